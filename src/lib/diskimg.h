/* diskimg.h — a sandbox's writable layer on a disk of its own: a sparse
 * file holding an ext4 file system, attached to a loop device and mounted.
 * It bounds the bytes (and inodes) a sandbox can write, the way a
 * size-limited tmpfs does, but its pages are ordinary page cache on the
 * host's disk, not memory charged to the sandbox, and the file outlives a
 * host reboot: the writable layer of a long-lived sandbox (a cloud IDE's
 * workspace) can be large.
 *
 * The image lives in a directory only the daemon can reach (the sandbox's
 * state dir); the sandbox writes to it only through the mounted file
 * system, so the kernel only ever mounts an image that mkfs.ext4 and the
 * kernel itself wrote (and e2fsck checked, after a host crash).  The loop
 * device is attached with
 * LO_FLAGS_AUTOCLEAR: it goes away with the last unmount.  mkfs.ext4 and
 * resize2fs (e2fsprogs) are run from /sbin or /usr/sbin with an empty
 * environment. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* The smallest image mkfs.ext4 makes a usable file system of. */
#define DISKIMG_MIN_BYTES (4ull << 20)

/* Create name (O_EXCL, mode 0600) beneath dirfd as a sparse file of
 * size_bytes and make an ext4 file system on it (no reserved blocks, root
 * directory owned by uid:gid).  path is the same file's absolute path, for
 * mkfs.ext4.  On failure the file is removed. */
int diskimg_create(int dirfd, const char *name, const char *path, uint64_t size_bytes, uid_t uid, gid_t gid,
                   struct pbox_error *err);
/* Attach image to a free loop device and mount it at dir (ext4, nosuid,
 * nodev).  When a file system is already mounted at dir (the daemon
 * restarted), it is left as it is.  With check_first (an image that was in
 * use when the host went down), diskimg_check first. */
int diskimg_mount(const char *image, const char *dir, bool check_first, struct pbox_error *err);
/* e2fsck -p of an unmounted image: a file system that was mounted when the
 * host went down is made consistent before the kernel mounts it again
 * (what the sandbox wrote into data blocks must never be read as
 * metadata).  -EUCLEAN when e2fsck could not repair it. */
int diskimg_check(const char *image, struct pbox_error *err);
/* Grow the image mounted at dir to size_bytes, online (the loop device's
 * capacity, then resize2fs).  Smaller than it is: -EBUSY (ext4 does not
 * shrink while mounted); the same size: nothing. */
int diskimg_grow(const char *image, const char *dir, uint64_t size_bytes, struct pbox_error *err);
/* Whether this host can make such disks: mkfs.ext4 and resize2fs
 * installed, /dev/loop-control usable.  0, or the error saying what is
 * missing. */
int diskimg_probe(struct pbox_error *err);
/* The size of the image file (its apparent size, the limit). */
int diskimg_size(const char *image, uint64_t *ret_bytes, struct pbox_error *err);
