from carealign.cli import main

main()
