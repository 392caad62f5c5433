/* rootfs.h — the root filesystem of a sandbox.
 *
 * Host side (parent): the overlay (image layers read-only below, a
 * per-sandbox upper dir) is mounted by the daemon at a private mount point
 * under the runtime dir.
 *
 * Child side (system calls only, inside the new mount namespace, before
 * pivot_root): every mount target is resolved beneath the rootfs one
 * component at a time with O_NOFOLLOW, so a symlink planted in the image
 * (/proc -> /etc of the host, CVE-2021-30465 class) is an error, never
 * followed; mounts are made on /proc/self/fd/N of the resolved fd.  Then:
 * /proc of the sandbox's pid namespace with masked and read-only paths, /sys
 * read-only, a minimal /dev on tmpfs (null zero full random urandom tty bound
 * from the host, devpts newinstance, shm), pivot_root, old root detached. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Paths (relative to the sandbox root) masked and made read-only; exported so
 * the docs and tests can list them. */
extern const char *const rootfs_masked_paths[];
extern const char *const rootfs_readonly_paths[];
extern const char *const rootfs_dev_nodes[];

int rootfs_mount_overlay(char *const *lower_dirs /* lowest first */, const char *upper_dir,
                         const char *work_dir, const char *target, struct pbox_error *err);
int rootfs_unmount(const char *target, struct pbox_error *err);

/* A size-limited writable layer: a tmpfs of size_bytes mounted at dir
 * (nosuid, nodev, mode 0755) holding upper/ (0755, owned by uid:gid) and
 * work/ (0700) for the overlay.  A tmpfs already mounted at dir (pboxd
 * restarted) is reused as it is.  Its pages are charged to the memory
 * cgroup of whoever writes them (the sandbox). */
int rootfs_mount_layer_tmpfs(const char *dir, uint64_t size_bytes, uid_t uid, gid_t gid, struct pbox_error *err);
/* upper/ (0755, uid:gid) and work/ (0700) in dir, for a writable layer on
 * a file system of its own (tmpfs, or a disk: diskimg.h). */
int rootfs_prepare_layer(const char *dir, uid_t uid, gid_t gid, struct pbox_error *err);
/* Change its size by remounting; below what is in use: -EBUSY. */
int rootfs_resize_layer_tmpfs(const char *dir, uint64_t size_bytes, struct pbox_error *err);
/* Bytes used by a writable layer: with tmpfs (or any file system of its
 * own mounted at dir), what it uses (statfs); otherwise a walk of dir (the
 * upper dir) summing st_blocks * 512,
 * never following symlinks, stopping after max_entries entries (-E2BIG,
 * with the partial sum in *ret_bytes). */
int rootfs_layer_usage(const char *dir, bool tmpfs, uint64_t max_entries, uint64_t *ret_bytes,
                       struct pbox_error *err);

/* Child side.  On failure returns -errno and stores a static description of
 * the failed step in *ret_step. */
int rootfs_setup_child(const char *rootfs, const char **ret_step);
