from humanpose.cli import console_main

console_main()
