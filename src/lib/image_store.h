/* image_store.h — the image and layer store under STATE_DIR (blobs/, layers/,
 * images/): loading OCI and `docker save` archives, listing, resolving a
 * reference to an ordered list of unpacked layers, removal.
 *
 * Layout (see docs/ARCHITECTURE.md):
 *   STATE_DIR/blobs/sha256/<hex>     manifests, configs and compressed layers as loaded
 *   STATE_DIR/layers/<diffid-hex>/   each layer unpacked once, read-only, shared;
 *                                    ownership shifted by uid_base/gid_base so that the
 *                                    sandbox's root (uid 0 inside) owns what image root owns
 *   STATE_DIR/images/<id>.json       image records (id = hex of the config digest)
 *   STATE_DIR/tmp/                   staging; anything here is garbage after a crash
 *
 * A load stages everything and commits with renames under an exclusive flock
 * of STATE_DIR/images/.lock, so a failed or interrupted load leaves no
 * image record and no layer directory behind, and two loads of images that
 * share a layer may run concurrently in separate processes.
 *
 * images/<id>.json holds exactly the public record; "created" is the time the
 * image was first loaded into this store (image configs of reproducible
 * builds carry meaningless dates).  Loading an image under a name another
 * image has moves the name; the other image keeps its record (by id).
 * Layer unpacking policy (absolute names, links, devices, setuid, xattrs,
 * whiteouts, limits): see layer_store.h.
 *
 * Error codes of image_store_load: EINVAL/ERANGE/ELOOP/ENOTDIR/ENAMETOOLONG/
 * E2BIG = the archive is bad or breaks a limit (client error, the message
 * names the entry or blob); EFBIG = max_archive_bytes / max_layer_bytes
 * exceeded; EAGAIN = layers kept vanishing under concurrent removals;
 * anything else (EIO, ENOSPC, ...) = a server-side failure. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct image_store;

struct image_store_options {
        uid_t uid_base;         /* host uid of uid 0 in a sandbox */
        gid_t gid_base;
        uint32_t id_count;      /* size of the mapped range; entries owned by ids >= id_count are rejected */
        uint64_t max_archive_bytes;     /* 0 = no limit beyond the disk */
        uint64_t max_layer_bytes;       /* uncompressed, per layer; 0 = no limit */
        uint64_t max_layer_entries;     /* tar entries per layer; 0 = 1,000,000 */
};

int image_store_open(const char *state_dir, const struct image_store_options *opts,
                     struct image_store **ret, struct pbox_error *err);
void image_store_free(struct image_store *store);

/* Normalise a reference: "busybox" -> "busybox:latest"; "repo/x:1" kept;
 * "sha256:<hex>" or a 64-hex id kept as an id reference.  -EINVAL for names
 * that are not a valid reference (empty, spaces, control chars, too long). */
int image_ref_normalize(const char *ref, char **ret, struct pbox_error *err);

/* Load an archive read from archive_fd (seekable or not).  name_override,
 * if not NULL, is the name:tag the image gets instead of the one recorded in
 * the archive.  On success *ret_image is the image's public record (the same
 * object GET /v1/images lists). */
int image_store_load(struct image_store *store, int archive_fd, const char *name_override,
                     json_t **ret_image, struct pbox_error *err);

/* A JSON array of public image records:
 * {id, names: [..], digest (manifest), layers: [diffid..], size, created, config: {env, cmd, entrypoint, working_dir, user}} */
int image_store_list(struct image_store *store, json_t **ret_array, struct pbox_error *err);

struct image_info {
        char *id;               /* 64 hex */
        char *ref;              /* the reference as resolved (name:tag or id) */
        char **layer_dirs;      /* absolute paths, lowest layer first, NULL-terminated */
        size_t n_layers;
        char **env;             /* "K=V", NULL-terminated (maybe empty) */
        char **entrypoint;      /* NULL-terminated, maybe empty */
        char **cmd;             /* NULL-terminated, maybe empty */
        char *working_dir;      /* "" if unset */
        char *user;             /* "" if unset */
};

/* -ENOENT (with a message) when the reference names no image. */
int image_store_resolve(struct image_store *store, const char *ref, struct image_info **ret,
                        struct pbox_error *err);
void image_info_free(struct image_info *info);

/* Remove a reference: a name drops that name (and the image once it has no
 * names left); an id removes the image with all its names.  Layers no longer
 * used by any image are deleted.  The caller has checked that no sandbox uses it. */
int image_store_remove(struct image_store *store, const char *ref, struct pbox_error *err);
