"""`python -m connector.emulators.salesforce.server`: run the emulator."""

from connector.emulators.salesforce.server import main

if __name__ == "__main__":
    main()
