from bench_cli.entry import main

main()
