from faceheal.cli import main

main()
