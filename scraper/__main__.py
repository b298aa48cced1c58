from .cli import entry_point

if __name__ == "__main__":  # spawn workers import this module again under another name
    entry_point()
