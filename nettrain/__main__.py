from nettrain.cli import main

main()
