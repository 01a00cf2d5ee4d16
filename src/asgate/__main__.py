from asgate.cli import main

main()
