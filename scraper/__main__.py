from .cli import main

if __name__ == "__main__":  # spawn workers import this module again under another name
    raise SystemExit(main())
