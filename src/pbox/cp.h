/* cp.h — `pbox cp`: copying files and directories between the local file
 * system and a sandbox (cp.c).  The command table in commands.c lists it as
 *   { "cp", PBOX_CP_SYNOPSIS, PBOX_CP_SUMMARY, PBOX_CP_DESCRIPTION,
 *     PBOX_CP_OPTIONS, cmd_cp, PBOX_EXIT_FAILURE } */
#pragma once

#include "commands.h"

#define PBOX_CP_SYNOPSIS "[OPTIONS] LOCAL ID:PATH | [OPTIONS] ID:PATH LOCAL"
#define PBOX_CP_SUMMARY "Copy files and directories into or out of a sandbox."
#define PBOX_CP_DESCRIPTION                                                                  \
        "ID:PATH names a path inside sandbox ID (ID or name; PATH absolute). A\n"           \
        "directory is copied with everything below it (symlinks as symlinks, never\n"      \
        "followed; special files skipped). When the destination is an existing\n"         \
        "directory, the source is copied into it under its own name; otherwise it\n"      \
        "becomes the destination. LOCAL '-' writes a file's contents (or a\n"             \
        "directory's tar archive) to standard output. Uploaded files belong to\n"         \
        "the sandbox's root unless --owner says otherwise. Works on running and\n"        \
        "stopped sandboxes."
#define PBOX_CP_OPTIONS                                                                      \
        "  -p, --parents            create missing parent directories in the sandbox\n"   \
        "  -m, --mode MODE          mode of an uploaded file (octal; default: the local\n" \
        "                           file's, without setuid and setgid)\n"                  \
        "      --owner UID[:GID]    owner inside the sandbox of what is uploaded\n"         \
        "                           (default 0:0)\n"                                        \
        "  -r, --recursive          accepted for familiarity: directories are always\n"     \
        "                           copied recursively\n"

int cmd_cp(struct pbox_cli *cli, const struct pbox_cmd *cmd, int argc, char **argv);
