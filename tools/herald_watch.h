#ifndef HERALD_TOOLS_HERALD_WATCH_H
#define HERALD_TOOLS_HERALD_WATCH_H

/*
 * `herald watch`: implemented in tools/herald_watch.c. herald.c calls it
 * after consuming the global options (--broker, --secret), with argv[0]
 * being "watch" and the rest the command's own arguments (getopt-style,
 * like a main()). Borrows argv. Returns the process exit status: 0 ok,
 * 1 runtime error, 2 usage error.
 */
int herald_watch_main(int argc, char **argv);

#endif
