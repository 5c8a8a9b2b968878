"""``python -m movierec`` runs the command line."""

from movierec.cli import main

if __name__ == "__main__":
    main()
