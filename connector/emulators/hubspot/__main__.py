"""`python -m connector.emulators.hubspot.server`: run the emulator."""

from connector.emulators.hubspot.server import main

if __name__ == "__main__":
    main()
