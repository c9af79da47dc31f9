from thinnka.cli import main

main()
