from edgefinder.cli import main

main()
