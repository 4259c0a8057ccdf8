"""Entry point of the multi-language package: Pulumi runs ``python <this directory>`` with the
engine's address; everything lives in ``components.package``."""

from components.package import main

if __name__ == "__main__":
    main()
