from hoga.cli import main

main()
