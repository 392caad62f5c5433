#!/usr/bin/python3
# ociarchive.py — writes an OCI image layout archive (what `skopeo copy ...
# oci-archive:` produces) from a root filesystem directory, without Docker.
#
# Owns: the deterministic layer tarball (entries sorted by name, fixed mtime,
# numeric owners, gzip without name/time), the image config, the manifest,
# index.json (name annotations) and the outer tar.  The same rootfs, config
# and SOURCE_DATE_EPOCH give a byte-identical archive.
#
# Shared by every recipe under rootfs-recipes/.  Python 3 standard library only.
#
#   ociarchive.py --rootfs DIR --ref NAME:TAG --output OUT.tar
#                 [--env K=V]... [--cmd JSON] [--entrypoint JSON]
#                 [--workdir DIR] [--user USER] [--label K=V]...
#                 [--arch DEBARCH|OCIARCH] [--epoch SECONDS]
#                 [--created-by TEXT] [--keep-owners] [--allow-devices]
#                 [--compress-level 1-9]
#
# The output is written to OUT.tar.tmp and renamed into place.  The manifest
# digest and the config digest (the image id) are printed on stdout.

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import tempfile

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# dpkg architecture -> (GOARCH as OCI uses it, variant)
DPKG_TO_OCI = {
    "amd64": ("amd64", None),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v5"),
    "i386": ("386", None),
    "ppc64el": ("ppc64le", None),
    "s390x": ("s390x", None),
    "mips64el": ("mips64le", None),
    "mipsel": ("mipsle", None),
    "riscv64": ("riscv64", None),
    "loong64": ("loong64", None),
}
OCI_ARCHES = {v[0] for v in DPKG_TO_OCI.values()}


class ArchiveError(Exception):
    pass


def canonical_json(obj):
    """Sorted keys, no insignificant whitespace: one byte string per object."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def rfc3339(epoch):
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def host_arch():
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                          os.uname().machine)
    return out


def oci_platform(arch):
    """Accept a dpkg or an OCI architecture name, return the OCI platform."""
    if arch in DPKG_TO_OCI:
        name, variant = DPKG_TO_OCI[arch]
    elif arch in OCI_ARCHES:
        name, variant = arch, None
    else:
        raise ArchiveError(f"unknown architecture {arch!r}")
    platform = {"architecture": name, "os": "linux"}
    if variant:
        platform["variant"] = variant
    return platform


def valid_ref_name(ref):
    """The grammar of org.opencontainers.image.ref.name (annotations.md):
    ref ::= component ("/" component)*; component ::= alphanum (separator
    alphanum)*; alphanum ::= [A-Za-z0-9]+; separator ::= [-._:@+] | "--"."""
    component = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
    return re.fullmatch(rf"{component}(?:/{component})*", ref) is not None


class _HashingWriter:
    """File-like sink for tarfile: hashes what passes (the diff_id) and
    forwards it to the gzip stream."""

    def __init__(self, sink):
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha.update(data)
        self.sink.write(data)
        self.size += len(data)
        return len(data)

    def tell(self):
        return self.size


def _walk_sorted(root):
    """Yield (relative path, absolute path) depth first, each directory
    before its contents, siblings in byte order of their names."""
    def rec(rel, absdir):
        with os.scandir(absdir) as it:
            entries = sorted(it, key=lambda e: os.fsencode(e.name))
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            yield r, e.path
            if e.is_dir(follow_symlinks=False):
                yield from rec(r, e.path)
    yield from rec("", root)


def write_layer(rootfs, blob_file, epoch, keep_owners=False, allow_devices=False,
                compress_level=9):
    """Write the gzip-compressed layer tar of rootfs to blob_file.
    Returns (diff_id, uncompressed size)."""
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=blob_file, mtime=0,
                       compresslevel=compress_level)
    hw = _HashingWriter(gz)
    hardlinks = {}
    with tarfile.open(fileobj=hw, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        for rel, path in _walk_sorted(rootfs):
            st = os.lstat(path)
            ti = tarfile.TarInfo(rel)
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.mtime = int(epoch)
            if keep_owners:
                ti.uid, ti.gid = st.st_uid, st.st_gid
            else:
                ti.uid, ti.gid = 0, 0
            ti.uname = ti.gname = ""
            data = None
            if stat.S_ISDIR(st.st_mode):
                ti.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(st.st_mode):
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in hardlinks:
                    ti.type = tarfile.LNKTYPE
                    ti.linkname = hardlinks[key]
                else:
                    if st.st_nlink > 1:
                        hardlinks[key] = rel
                    ti.type = tarfile.REGTYPE
                    ti.size = st.st_size
                    data = path
            elif stat.S_ISFIFO(st.st_mode):
                ti.type = tarfile.FIFOTYPE
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                if not allow_devices:
                    print(f"ociarchive: skipping device node /{rel}", file=sys.stderr)
                    continue
                ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                ti.devmajor = os.major(st.st_rdev)
                ti.devminor = os.minor(st.st_rdev)
            else:
                print(f"ociarchive: skipping socket /{rel}", file=sys.stderr)
                continue
            if data is not None:
                with open(data, "rb") as f:
                    tar.addfile(ti, f)
            else:
                tar.addfile(ti)
    gz.close()
    return "sha256:" + hw.sha.hexdigest(), hw.size


def _sha256_file(f):
    f.seek(0)
    h = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def build_archive(rootfs, output, ref, *, env=None, cmd=None, entrypoint=None,
                  workdir="", user="", labels=None, arch=None, epoch=None,
                  created_by="", keep_owners=False, allow_devices=False,
                  extra_annotations=None, compress_level=9):
    """Write the OCI image layout archive of rootfs to output.
    Returns (manifest digest, config digest)."""
    if not os.path.isdir(rootfs):
        raise ArchiveError(f"{rootfs}: not a directory")
    if not valid_ref_name(ref):
        raise ArchiveError(f"{ref!r} is not a valid org.opencontainers.image.ref.name")
    if epoch is None:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    platform = oci_platform(arch or host_arch())
    created = rfc3339(epoch)

    outdir = os.path.dirname(os.path.abspath(output))
    with tempfile.TemporaryFile(dir=outdir) as blob:
        diff_id, _ = write_layer(rootfs, blob, epoch, keep_owners, allow_devices,
                                 compress_level)
        layer_digest, layer_size = _sha256_file(blob)

        cfg = {"Env": list(env) if env is not None else [DEFAULT_PATH]}
        if cmd is not None:
            cfg["Cmd"] = list(cmd)
        if entrypoint is not None:
            cfg["Entrypoint"] = list(entrypoint)
        if workdir:
            cfg["WorkingDir"] = workdir
        if user:
            cfg["User"] = user
        if labels:
            cfg["Labels"] = dict(labels)
        config = dict(platform)
        config.update({
            "created": created,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created,
                         "created_by": created_by or "pbox rootfs-recipes"}],
        })
        config_bytes = canonical_json(config)
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()

        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest,
                       "size": len(config_bytes)},
            "layers": [{"mediaType": MT_LAYER_GZIP, "digest": layer_digest,
                        "size": layer_size}],
            "annotations": {"org.opencontainers.image.created": created},
        }
        manifest_bytes = canonical_json(manifest)
        manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()

        annotations = {
            # The full name:tag, valid per the ref.name grammar; tools that
            # address a layout by tag use it as is (`umoci ... --image
            # dir:busybox:latest`, `skopeo ... oci:dir:busybox:latest`).
            "org.opencontainers.image.ref.name": ref,
            # What containerd's importer reads for the image name.
            "io.containerd.image.name": ref,
        }
        annotations.update(extra_annotations or {})
        index = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{"mediaType": MT_MANIFEST, "digest": manifest_digest,
                           "size": len(manifest_bytes), "platform": platform,
                           "annotations": annotations}],
        }
        index_bytes = canonical_json(index)
        layout_bytes = canonical_json({"imageLayoutVersion": "1.0.0"})

        tmp = output + ".tmp"
        try:
            with open(tmp, "wb") as out, \
                    tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                def add_dir(name):
                    ti = tarfile.TarInfo(name)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    ti.mtime = int(epoch)
                    tar.addfile(ti)

                def add_bytes(name, data):
                    ti = tarfile.TarInfo(name)
                    ti.size = len(data)
                    ti.mode = 0o644
                    ti.mtime = int(epoch)
                    tar.addfile(ti, io.BytesIO(data))

                add_bytes("oci-layout", layout_bytes)
                add_bytes("index.json", index_bytes)
                add_dir("blobs")
                add_dir("blobs/sha256")
                blobs = {
                    config_digest: ("bytes", config_bytes),
                    manifest_digest: ("bytes", manifest_bytes),
                    layer_digest: ("file", layer_size),
                }
                for digest in sorted(blobs):
                    kind, val = blobs[digest]
                    name = "blobs/sha256/" + digest.split(":", 1)[1]
                    if kind == "bytes":
                        add_bytes(name, val)
                    else:
                        ti = tarfile.TarInfo(name)
                        ti.size = val
                        ti.mode = 0o644
                        ti.mtime = int(epoch)
                        blob.seek(0)
                        tar.addfile(ti, blob)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp, output)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    return manifest_digest, config_digest


def _kv(s):
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"{s!r}: expected KEY=VALUE")
    return s


def _json_argv(s):
    try:
        v = json.loads(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{s!r}: not JSON: {e}")
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise argparse.ArgumentTypeError(f"{s!r}: expected a JSON array of strings")
    return v


def main(argv=None):
    p = argparse.ArgumentParser(description="Write an OCI image layout archive from a rootfs.")
    p.add_argument("--rootfs", required=True, help="root filesystem directory (one layer)")
    p.add_argument("--output", required=True, help="archive to write (OUT.tar)")
    p.add_argument("--ref", required=True, help="image name:tag, e.g. busybox:latest")
    p.add_argument("--env", action="append", type=_kv,
                   help=f"config Env entry (repeatable; default {DEFAULT_PATH})")
    p.add_argument("--cmd", type=_json_argv, help='config Cmd, JSON array, e.g. \'["/bin/sh"]\'')
    p.add_argument("--entrypoint", type=_json_argv, help="config Entrypoint, JSON array")
    p.add_argument("--workdir", default="", help="config WorkingDir")
    p.add_argument("--user", default="", help="config User")
    p.add_argument("--label", action="append", type=_kv, default=[], help="config Labels entry")
    p.add_argument("--annotation", action="append", type=_kv, default=[],
                   help="extra annotation on the index.json descriptor")
    p.add_argument("--arch", help="dpkg or OCI architecture (default: dpkg --print-architecture)")
    p.add_argument("--epoch", type=int,
                   help="timestamp of every entry and of 'created' (default SOURCE_DATE_EPOCH, else 0)")
    p.add_argument("--created-by", default="", help="history entry text")
    p.add_argument("--keep-owners", action="store_true",
                   help="keep numeric uid/gid of the files (default: everything 0:0)")
    p.add_argument("--allow-devices", action="store_true",
                   help="keep device nodes (default: skipped with a warning)")
    p.add_argument("--compress-level", type=int, choices=range(1, 10), default=9,
                   metavar="1-9",
                   help="gzip level of the layer (default 9; 6 is much faster on big trees)")
    a = p.parse_args(argv)
    try:
        manifest_digest, config_digest = build_archive(
            a.rootfs, a.output, a.ref, env=a.env, cmd=a.cmd, entrypoint=a.entrypoint,
            workdir=a.workdir, user=a.user,
            labels=dict(kv.split("=", 1) for kv in a.label),
            arch=a.arch, epoch=a.epoch, created_by=a.created_by,
            keep_owners=a.keep_owners, allow_devices=a.allow_devices,
            extra_annotations=dict(kv.split("=", 1) for kv in a.annotation),
            compress_level=a.compress_level)
    except (ArchiveError, OSError) as e:
        print(f"ociarchive: {e}", file=sys.stderr)
        return 1
    print(f"manifest {manifest_digest}")
    print(f"config {config_digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
