from bench_cli.cli import main

main()
