/* image_archive.h — the outer image archive: staging the members of an
 * untrusted tar stream (OCI image layout as `skopeo copy oci-archive:` writes,
 * or `docker save`) into numbered files of a private directory, then reading
 * the OCI index / manifest / config (or docker's manifest.json) out of them
 * with every blob checked against its descriptor (sha256 and size).
 *
 * Member names are attacker-controlled: they are cleaned, kept in memory and
 * only ever used as lookup keys; nothing is created on disk under them. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define IMAGE_JSON_MAX (4u << 20)       /* index.json, manifests, configs, manifest.json */
#define IMAGE_MAX_LAYERS 128

struct image_member {
        char *name;             /* cleaned member name */
        char *link;             /* cleaned target name for sym/hard links, else NULL */
        char file[24];          /* staged file name in the staging dir ("" for links) */
        uint64_t size;
        char sha256[65];        /* of the staged content */
};

struct image_archive {
        int dir_fd;             /* staging directory holding the member files */
        struct image_member *members;
        size_t n_members;
};

struct archive;
/* Enable the decompression filters we trust on a libarchive reader: gzip,
 * zstd, xz and bzip2, each only when libarchive has it built in (never an
 * external helper program). */
int image_archive_enable_filters(struct archive *ar, struct pbox_error *err);

/* Read a tar stream (optionally gzip/zstd/xz compressed) from in_fd with
 * read(2) only, staging each regular file member into dir_fd.  Both the raw
 * stream and the staged bytes are limited to max_bytes (0 = unlimited). */
int image_archive_stage(int in_fd, int dir_fd, uint64_t max_bytes, struct image_archive **ret,
                        struct pbox_error *err);
void image_archive_free(struct image_archive *a);

/* Find a member by (cleaned) name, following link members. NULL if absent. */
const struct image_member *image_archive_find(const struct image_archive *a, const char *name);
/* Open a staged member read-only; -errno. */
int image_archive_open(const struct image_archive *a, const struct image_member *m,
                       struct pbox_error *err);

struct image_config {
        char **env, **entrypoint, **cmd;        /* NULL-terminated, maybe empty */
        char *working_dir, *user;               /* "" if unset */
        char *created;                          /* NULL if unset */
        char **diff_ids;                        /* hex, NULL-terminated */
        size_t n_diff_ids;
};

struct image_layer_src {
        const struct image_member *member;      /* the (maybe compressed) layer stream */
        char blob_digest[72];                   /* "sha256:<hex>" of the blob, for messages */
        char diff_id[65];                       /* from the config */
};

struct image_source {
        const char *format;             /* "oci" or "docker-save" */
        char *name;                     /* full reference named by the archive, or NULL */
        char *tag_only;                 /* a bare tag when that is all the archive names */
        char manifest_hex[65];
        const struct image_member *manifest_member;     /* NULL when synthesised */
        char *manifest_json;            /* the manifest text (as stored / synthesised) */
        size_t manifest_len;
        char config_hex[65];            /* the image id */
        char *config_json;              /* the config text as stored */
        size_t config_len;
        struct image_config config;
        struct image_layer_src *layers;
        size_t n_layers;
};

/* Find the image in a staged archive and verify every descriptor on the way.
 * want_ref (a normalised name:tag, may be NULL) picks among several images
 * of one archive (by ref.name tag for OCI, by RepoTags for docker save). */
int image_archive_parse(const struct image_archive *a, const char *want_ref, struct image_source **ret,
                        struct pbox_error *err);
void image_source_free(struct image_source *s);

/* Parse an image config (OCI / docker) from JSON text. */
int image_config_parse(const char *buf, size_t len, struct image_config *ret, struct pbox_error *err);
void image_config_done(struct image_config *c);
