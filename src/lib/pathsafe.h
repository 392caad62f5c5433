/* pathsafe.h — checks and resolution of untrusted paths: archive entry names,
 * whiteout names, and paths resolved beneath a root directory without leaving it
 * (openat2 RESOLVE_IN_ROOT when the kernel has it, a careful component walk
 * otherwise), or beneath a directory without following any symlink at all
 * (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS).  Used by the tar extractors
 * (tarentry.c; CVE-2021-29136 class) and by the rootfs setup
 * (CVE-2021-30465 class). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Clean an archive entry name into a relative path without ".", "..", empty
 * components or a leading "/" ("./a//b/" -> "a/b").  Rejects (-EINVAL with a
 * message) names containing "..", NUL, or that are empty after cleaning when
 * !allow_root.  *ret is malloc'd. */
int pathsafe_clean_entry(const char *name, bool allow_root, char **ret, struct pbox_error *err);

enum whiteout_kind {
        WHITEOUT_NONE = 0,      /* an ordinary entry */
        WHITEOUT_FILE,          /* "dir/.wh.NAME": NAME is deleted; *ret_target = "dir/NAME" */
        WHITEOUT_OPAQUE,        /* "dir/.wh..wh..opq": dir is opaque; *ret_target = "dir" ("" for root) */
        WHITEOUT_INVALID,       /* ".wh." prefix with a bad name (".wh.", ".wh..", ".wh..wh.foo") */
};
/* Classify a cleaned entry path.  *ret_target (malloc'd) is set for FILE/OPAQUE. */
enum whiteout_kind pathsafe_whiteout(const char *clean_path, char **ret_target);

/* Open `path` (relative, cleaned or not) beneath root_fd, never leaving root:
 * symlinks (absolute or relative) and ".." resolve as if root_fd were "/".
 * flags as for openat (O_CLOEXEC is always added).  If no_symlinks, any
 * symlink in the path is an error (-ELOOP), except a final one opened with
 * O_PATH|O_NOFOLLOW (the link itself, as openat2 does).  Returns an fd or -errno. */
int pathsafe_open_beneath(int root_fd, const char *path, int flags, mode_t mode, bool no_symlinks);

/* The component walk pathsafe_open_beneath falls back to when the kernel has
 * no openat2; exported so the tests exercise it on every kernel. */
int pathsafe_open_beneath_walk(int root_fd, const char *path, int flags, mode_t mode, bool no_symlinks);

/* Open `path` (relative, cleaned: no ".." components) beneath dir_fd without
 * following any symlink, a final one included (-ELOOP), and, with no_xdev,
 * without crossing into another mount (-EXDEV).  openat2
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS[|RESOLVE_NO_XDEV];
 * on kernels without openat2 the component walk above with no_symlinks, where
 * no_xdev only recognises a directory on another file system.  "" opens
 * dir_fd itself.  flags as for openat (O_CLOEXEC is always added; O_NOFOLLOW
 * is added unless O_DIRECTORY is set, so that a final symlink is -ELOOP, not
 * the link itself).  Returns an fd or -errno. */
int pathsafe_open_nofollow(int dir_fd, const char *path, int flags, bool no_xdev);
