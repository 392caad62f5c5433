#!/usr/bin/env python3
"""mkimage.py - build small OCI / docker-save image archives for pbox tests.

Stdlib only (tarfile, hashlib, json, gzip); zstd layers use the `zstd` command.
Everything is deterministic (fixed mtimes), so the same spec gives the same
layer digests and diff ids every time.

USAGE
  mkimage.py oci    OUT.tar [OPTIONS] [--layer L]...
  mkimage.py docker OUT.tar [OPTIONS] [--layer L]...
  mkimage.py hostile KIND OUT.tar [--target DIR] [--base OCI.tar] [--steal-diffid HEX]
  mkimage.py hostile --list
  mkimage.py check-layer LAYER_DIR CHECKS_JSON

OPTIONS (processed in order; --compress applies to the --layer args after it)
  --name REF             OCI: annotation org.opencontainers.image.ref.name=REF;
                         docker: RepoTags [REF]
  --ref-name S           OCI: set org.opencontainers.image.ref.name to S verbatim
                         (e.g. just a tag: "latest")
  --containerd-name REF  OCI: annotation io.containerd.image.name=REF
  --nested               OCI: index.json -> nested image index listing a
                         linux/arm64 manifest (blobs absent) and the
                         linux/amd64 one -> manifest
  --base OCI.tar         start from the layers and config of an existing OCI
                         (or docker-save) archive, e.g. the busybox image
  --compress C           none | gzip | zstd for the following layers (default gzip)
  --env K=V              add to config Env (repeatable)
  --cmd JSON             config Cmd, e.g. '["sh"]'
  --entrypoint JSON      config Entrypoint
  --workdir DIR / --user U
  --docker-legacy        docker: <id>/layer.tar + <config-hex>.json (docker < 25);
                         default: blobs/sha256/<hex> paths (docker >= 25 style,
                         but without oci-layout/index.json)
  --layer DIR            a layer made of the directory tree DIR (owned 0:0)
  --layer JSON | @FILE   a layer made of a JSON list of entries (paths verbatim:
                         absolute names and ".." stay as given):
      {"type": "file", "path": P, "data": "text" | "from": HOSTFILE,
       "mode": 420, "uid": 0, "gid": 0, "xattrs": {"user.x": "v"}}
      {"type": "dir", "path": P, "mode": 493}
      {"type": "symlink", "path": P, "target": T}
      {"type": "hardlink", "path": P, "target": T}
      {"type": "whiteout", "path": P}     -> entry dirname(P)/.wh.basename(P)
      {"type": "opaque", "path": D}       -> entry D/.wh..wh..opq
      {"type": "raw", "path": P}          -> an empty file named P exactly
      {"type": "chardev"|"blockdev", "path": P, "major": M, "minor": N}
      {"type": "fifo", "path": P}

HOSTILE KINDS
  `hostile KIND OUT.tar` writes an OCI archive named hostile/KIND:latest and
  prints one JSON object: {"kind", "expect": "reject"|"accept", "needle":
  text the load error must contain (reject), "checks": [...] (accept)}.
  --target DIR is the absolute path of a sentinel directory outside the
  store that hostile entries aim at (default /tmp/pbox-hostile-sentinel).
  --steal-diffid HEX (bad-diffid): claim the diff id of a layer the store
  already has, with different content.
  `hostile --list` prints "KIND EXPECT" lines.

CHECKS ("check-layer")
  A list of {"path": P, "exists": bool, "type": "file"|"dir"|"symlink"|"chardev",
  "mode": "0755", "xattrs_absent": [names], "xattrs_present": [names]} checked
  against an unpacked layer directory; exit 1 and a message per failure.
"""

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile

MTIME = 1700000000
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def die(msg):
    sys.stderr.write("mkimage.py: %s\n" % msg)
    sys.exit(2)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- layers

def _info(name, typ, mode=0o644, uid=0, gid=0, size=0):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = mode
    ti.uid = uid
    ti.gid = gid
    ti.uname = ""
    ti.gname = ""
    ti.mtime = MTIME
    ti.size = size
    return ti


def layer_from_entries(entries):
    """Uncompressed tar bytes from a list of entry dicts."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            t = e["type"]
            p = e["path"]
            uid = e.get("uid", 0)
            gid = e.get("gid", 0)
            if t == "file":
                if "from" in e:
                    with open(e["from"], "rb") as f:
                        data = f.read()
                else:
                    data = e.get("data", "").encode()
                ti = _info(p, tarfile.REGTYPE, e.get("mode", 0o644), uid, gid, len(data))
                if "xattrs" in e:
                    ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in e["xattrs"].items()}
                tf.addfile(ti, io.BytesIO(data))
            elif t == "raw":
                tf.addfile(_info(p, tarfile.REGTYPE, e.get("mode", 0o644), uid, gid), io.BytesIO(b""))
            elif t == "dir":
                tf.addfile(_info(p, tarfile.DIRTYPE, e.get("mode", 0o755), uid, gid))
            elif t == "symlink":
                ti = _info(p, tarfile.SYMTYPE, 0o777, uid, gid)
                ti.linkname = e["target"]
                tf.addfile(ti)
            elif t == "hardlink":
                ti = _info(p, tarfile.LNKTYPE, e.get("mode", 0o644), uid, gid)
                ti.linkname = e["target"]
                tf.addfile(ti)
            elif t == "whiteout":
                d, b = os.path.split(p)
                tf.addfile(_info(os.path.join(d, ".wh." + b), tarfile.REGTYPE, 0o600))
            elif t == "opaque":
                tf.addfile(_info(os.path.join(p, ".wh..wh..opq"), tarfile.REGTYPE, 0o600))
            elif t in ("chardev", "blockdev"):
                ti = _info(p, tarfile.CHRTYPE if t == "chardev" else tarfile.BLKTYPE, e.get("mode", 0o600), uid, gid)
                ti.devmajor = e.get("major", 0)
                ti.devminor = e.get("minor", 0)
                tf.addfile(ti)
            elif t == "fifo":
                tf.addfile(_info(p, tarfile.FIFOTYPE, e.get("mode", 0o600), uid, gid))
            else:
                die("unknown entry type %r" % t)
    return buf.getvalue()


def layer_from_dir(root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for n in sorted(dirnames + filenames):
                full = os.path.join(dirpath, n)
                rel = os.path.normpath(os.path.join(rel_dir, n))
                ti = tf.gettarinfo(full, arcname=rel)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                ti.mtime = MTIME
                if ti.isfile():
                    with open(full, "rb") as f:
                        tf.addfile(ti, f)
                elif ti.isdir() or ti.issym():
                    tf.addfile(ti)
    return buf.getvalue()


def compress(data, how):
    if how == "none":
        return data
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE, check=True).stdout
    die("unknown compression %r" % how)


class Layer:
    def __init__(self, tar_bytes, how="gzip", media_type=None, blob=None):
        self.diff_id = sha256(tar_bytes)
        self.blob = compress(tar_bytes, how) if blob is None else blob
        self.digest = sha256(self.blob)
        self.media_type = media_type or MT_LAYER[how]


# ---------------------------------------------------------------- reading a base image

def read_base(path):
    """(layers, config dict) of an OCI or docker-save archive."""
    with tarfile.open(path) as tf:
        members = {}
        for m in tf.getmembers():
            if m.isfile():
                members[os.path.normpath(m.name)] = m

        def read(name):
            name = os.path.normpath(name)
            if name not in members:
                die("base %s: %s missing" % (path, name))
            return tf.extractfile(members[name]).read()

        if "index.json" in members:
            desc = pick(json.loads(read("index.json")))
            while desc["mediaType"] in (MT_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"):
                desc = pick(json.loads(read("blobs/sha256/" + desc["digest"][7:])))
            man = json.loads(read("blobs/sha256/" + desc["digest"][7:]))
            cfg = json.loads(read("blobs/sha256/" + man["config"]["digest"][7:]))
            blobs = [(l["mediaType"], read("blobs/sha256/" + l["digest"][7:])) for l in man["layers"]]
        else:
            dm = json.loads(read("manifest.json"))[0]
            cfg = json.loads(read(dm["Config"]))
            blobs = [(None, read(l)) for l in dm["Layers"]]
        layers = []
        for (mt, blob), diff in zip(blobs, cfg["rootfs"]["diff_ids"]):
            how = "gzip" if blob[:2] == b"\x1f\x8b" else "zstd" if blob[:4] == b"\x28\xb5\x2f\xfd" else "none"
            L = Layer(b"", how, mt, blob)
            L.diff_id = diff[7:]
            layers.append(L)
        return layers, cfg


def pick(index):
    ms = index["manifests"]
    if len(ms) == 1:
        return ms[0]
    for m in ms:
        p = m.get("platform", {})
        if p.get("os") == "linux" and p.get("architecture") == "amd64":
            return m
    return ms[0]


# ---------------------------------------------------------------- writing archives

class Archive:
    def __init__(self):
        self.files = []         # (name, bytes) in order

    def add(self, name, data):
        self.files.append((name, data))

    def write(self, out):
        dirs = set()
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
            for name, data in self.files:
                if isinstance(data, tuple):     # ("symlink", target)
                    ti = _info(name, tarfile.SYMTYPE, 0o777)
                    ti.linkname = data[1]
                    tf.addfile(ti)
                    continue
                parts = name.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/".join(parts[:i])
                    if d and d not in dirs and ".." not in d:
                        dirs.add(d)
                        tf.addfile(_info(d, tarfile.DIRTYPE, 0o755))
                tf.addfile(_info(name, tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))


def make_config(layers, opts, base_cfg=None):
    cfg = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l.diff_id for l in layers]},
    }
    if base_cfg and isinstance(base_cfg.get("config"), dict):
        cfg["config"] = dict(base_cfg["config"])
    c = cfg["config"]
    if opts["env"]:
        c["Env"] = list(c.get("Env") or []) + opts["env"]
    for k, opt in (("Cmd", "cmd"), ("Entrypoint", "entrypoint"), ("WorkingDir", "workdir"), ("User", "user")):
        if opts[opt] is not None:
            c[k] = opts[opt]
    return cfg


def build_oci(out, layers, opts, base_cfg=None, tamper=None):
    tamper = tamper or {}
    ar = Archive()
    blobs = {}
    cfg = make_config(layers, opts, base_cfg)
    if "config" in tamper:
        tamper["config"](cfg)
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    blobs[sha256(cfg_bytes)] = cfg_bytes
    man = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": "sha256:" + sha256(cfg_bytes), "size": len(cfg_bytes)},
        "layers": [{"mediaType": l.media_type, "digest": "sha256:" + l.digest, "size": len(l.blob)} for l in layers],
    }
    if "manifest" in tamper:
        tamper["manifest"](man)
    man_bytes = json.dumps(man, sort_keys=True).encode()
    blobs[sha256(man_bytes)] = man_bytes
    for l in layers:
        blobs[l.digest] = l.blob
    if "blobs" in tamper:
        tamper["blobs"](blobs, layers)

    ann = {}
    if opts["name"]:
        ann["org.opencontainers.image.ref.name"] = opts["name"]
    if opts["ref_name"]:
        ann["org.opencontainers.image.ref.name"] = opts["ref_name"]
    if opts["containerd_name"]:
        ann["io.containerd.image.name"] = opts["containerd_name"]
    mdesc = {"mediaType": MT_MANIFEST, "digest": "sha256:" + sha256(man_bytes), "size": len(man_bytes),
             "platform": {"os": "linux", "architecture": "amd64"}}
    if opts["nested"]:
        other = {"mediaType": MT_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 123,
                 "platform": {"os": "linux", "architecture": "arm64"}}
        nested = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [other, mdesc]},
                            sort_keys=True).encode()
        blobs[sha256(nested)] = nested
        top = {"mediaType": MT_INDEX, "digest": "sha256:" + sha256(nested), "size": len(nested)}
    else:
        top = mdesc
    if ann:
        top["annotations"] = ann
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [top]}
    ar.add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
    ar.add("index.json", json.dumps(index, sort_keys=True).encode())
    for hexd in sorted(blobs):
        ar.add("blobs/sha256/" + hexd, blobs[hexd])
    for name, data in tamper.get("extra", []):
        ar.add(name, data)
    ar.write(out)
    return {"manifest": sha256(man_bytes), "config": sha256(cfg_bytes)}


def build_docker(out, layers, opts, base_cfg=None):
    ar = Archive()
    cfg = make_config(layers, opts, base_cfg)
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    cfg_hex = sha256(cfg_bytes)
    entry = {"RepoTags": [opts["name"]] if opts["name"] else None, "Layers": []}
    if opts["docker_legacy"]:
        entry["Config"] = cfg_hex + ".json"
        ar.add(cfg_hex + ".json", cfg_bytes)
        seen = {}
        for l in layers:
            lid = sha256((l.digest + str(len(entry["Layers"]))).encode())
            name = lid + "/layer.tar"
            if l.digest in seen:        # docker links duplicated layers
                ar.add(name, ("symlink", "../" + seen[l.digest]))
            else:
                seen[l.digest] = name
                ar.add(name, l.blob)
                ar.add(lid + "/VERSION", b"1.0")
            entry["Layers"].append(name)
    else:
        entry["Config"] = "blobs/sha256/" + cfg_hex
        ar.add("blobs/sha256/" + cfg_hex, cfg_bytes)
        for l in layers:
            name = "blobs/sha256/" + l.digest
            if name not in [n for n, _ in ar.files]:
                ar.add(name, l.blob)
            entry["Layers"].append(name)
    ar.add("manifest.json", json.dumps([entry]).encode())
    ar.write(out)
    return {"config": cfg_hex}


# ---------------------------------------------------------------- hostile archives

HOSTILE = {
    # kind: (expect, description)
    "abs-path": ("accept", "absolute entry name aimed at the sentinel: made relative, lands in the layer"),
    "dotdot": ("reject", "entry name climbing out with .."),
    "dotdot-middle": ("reject", "entry name with .. in the middle"),
    "symlink-escape": ("reject", "relative symlink escaping the root, then a file written through it"),
    "symlink-then-write": ("reject", "absolute symlink to the sentinel, then a file written through it"),
    "symlink-loop": ("reject", "symlink loop, then a file through it"),
    "symlink-overwrite": ("accept", "symlink to a sentinel file, then a regular file of the same name replaces it"),
    "symlink-dir-replace": ("accept", "symlink to the sentinel dir, then a dir entry of the same name, then a file in it"),
    "hardlink-escape": ("reject", "hardlink to /etc/passwd"),
    "hardlink-dotdot": ("reject", "hardlink to ../../etc/passwd"),
    "hardlink-symlink": ("reject", "hardlink through a symlink to /etc"),
    "hardlink-dir": ("reject", "hardlink to a directory"),
    "whiteout-symlink": ("reject", "whiteout through a symlink to the sentinel"),
    "opaque-symlink": ("reject", "opaque marker through a symlink to the sentinel"),
    "device": ("accept", "char/block devices and a fifo: skipped"),
    "setuid": ("accept", "setuid/setgid files: bits stripped"),
    "xattr": ("accept", "trusted.overlay.opaque / security.capability xattrs dropped, user.* kept"),
    "bad-uid": ("reject", "file owned by uid 70000 (outside the mapped range)"),
    "bad-digest": ("reject", "layer blob does not match its digest"),
    "bad-size": ("reject", "layer descriptor size is wrong"),
    "bad-diffid": ("reject", "config diff_id does not match the uncompressed layer"),
    "bad-whiteout": ("reject", "a .wh..wh.foo entry"),
    "bad-whiteout-empty": ("reject", "a .wh. entry with no name"),
    "huge-manifest": ("reject", "manifest larger than 4 MiB"),
    "huge-config": ("reject", "config larger than 4 MiB"),
    "long-path": ("reject", "entry name longer than 4096 bytes"),
    "deep-path": ("reject", "entry 300 directories deep"),
    "outer-dotdot": ("reject", "outer archive member named ../../sentinel/x"),
    "outer-symlink": ("reject", "outer archive blob member is a symlink to /etc/passwd"),
    "not-tar": ("reject", "random bytes"),
}


def hostile(kind, out, target, base, steal=None):
    if kind not in HOSTILE:
        die("unknown hostile kind %r (see --list)" % kind)
    expect = HOSTILE[kind][0]
    t = target.lstrip("/")
    up = "../" * 24
    opts = default_opts()
    opts["name"] = "hostile/%s:latest" % kind
    base_layers, base_cfg = read_base(base) if base else ([], None)
    ok = [{"type": "dir", "path": "etc"}, {"type": "file", "path": "etc/hello", "data": "hello\n"}]
    entries = []
    needle = None
    checks = []
    tamper = {}
    raw_layer = None
    if kind == "abs-path":
        entries = [{"type": "file", "path": "/" + t + "/abs-pwned", "data": "x"}]
        checks = [{"path": t + "/abs-pwned", "exists": True, "type": "file"}]
    elif kind == "dotdot":
        entries = [{"type": "file", "path": up + t + "/dotdot-pwned", "data": "x"}]
        needle = "dotdot-pwned"
    elif kind == "dotdot-middle":
        entries = [{"type": "dir", "path": "a"}, {"type": "file", "path": "a/../../" + t + "/mid-pwned", "data": "x"}]
        needle = "mid-pwned"
    elif kind == "symlink-escape":
        entries = [{"type": "symlink", "path": "escape", "target": up + t},
                   {"type": "file", "path": "escape/symlink-escape-pwned", "data": "x"}]
        needle = "escape/symlink-escape-pwned"
    elif kind == "symlink-then-write":
        entries = [{"type": "symlink", "path": "etc/evil", "target": target},
                   {"type": "file", "path": "etc/evil/write-pwned", "data": "x"}]
        needle = "etc/evil/write-pwned"
    elif kind == "symlink-loop":
        entries = [{"type": "symlink", "path": "la", "target": "lb"}, {"type": "symlink", "path": "lb", "target": "la"},
                   {"type": "file", "path": "la/loop-pwned", "data": "x"}]
        needle = "la/loop-pwned"
    elif kind == "symlink-overwrite":
        entries = [{"type": "symlink", "path": "victim", "target": target + "/victim"},
                   {"type": "file", "path": "victim", "data": "replaced\n"}]
        checks = [{"path": "victim", "exists": True, "type": "file"}]
    elif kind == "symlink-dir-replace":
        entries = [{"type": "symlink", "path": "d", "target": target},
                   {"type": "dir", "path": "d"},
                   {"type": "file", "path": "d/inside", "data": "x"}]
        checks = [{"path": "d", "exists": True, "type": "dir"}, {"path": "d/inside", "exists": True, "type": "file"}]
    elif kind == "hardlink-escape":
        entries = [{"type": "hardlink", "path": "passwd-link", "target": "/etc/passwd"}]
        needle = "passwd-link"
    elif kind == "hardlink-dotdot":
        entries = [{"type": "hardlink", "path": "pw-dotdot", "target": up + "etc/passwd"}]
        needle = "pw-dotdot"
    elif kind == "hardlink-symlink":
        entries = [{"type": "symlink", "path": "s", "target": "/etc"},
                   {"type": "hardlink", "path": "pw-sym", "target": "s/passwd"}]
        needle = "pw-sym"
    elif kind == "hardlink-dir":
        entries = [{"type": "dir", "path": "hd"}, {"type": "hardlink", "path": "hl-dir", "target": "hd"}]
        needle = "hl-dir"
    elif kind == "whiteout-symlink":
        entries = [{"type": "symlink", "path": "wl", "target": target},
                   {"type": "whiteout", "path": "wl/victim"}]
        needle = "wl/.wh.victim"
    elif kind == "opaque-symlink":
        entries = [{"type": "symlink", "path": "ol", "target": target},
                   {"type": "opaque", "path": "ol"}]
        needle = "ol/.wh..wh..opq"
    elif kind == "device":
        entries = [{"type": "dir", "path": "dev"},
                   {"type": "chardev", "path": "dev/mem", "major": 1, "minor": 1},
                   {"type": "blockdev", "path": "dev/sda", "major": 8, "minor": 0},
                   {"type": "fifo", "path": "dev/fifo"}]
        checks = [{"path": "dev/mem", "exists": False}, {"path": "dev/sda", "exists": False},
                  {"path": "dev/fifo", "exists": False}, {"path": "dev", "exists": True, "type": "dir"}]
    elif kind == "setuid":
        entries = [{"type": "file", "path": "suid", "data": "x", "mode": 0o4755},
                   {"type": "file", "path": "sgid", "data": "x", "mode": 0o2755},
                   {"type": "dir", "path": "sticky", "mode": 0o1777}]
        checks = [{"path": "suid", "exists": True, "mode": "0755"}, {"path": "sgid", "exists": True, "mode": "0755"},
                  {"path": "sticky", "exists": True, "mode": "1777"}]
    elif kind == "xattr":
        entries = [{"type": "dir", "path": "x"},
                   {"type": "file", "path": "x/f", "data": "x",
                    "xattrs": {"trusted.overlay.opaque": "y", "security.capability": "\x01\x00\x00\x02",
                               "user.keep": "1", "user.overlay.opaque": "y"}}]
        checks = [{"path": "x/f", "exists": True, "xattrs_present": ["user.keep"],
                   "xattrs_absent": ["trusted.overlay.opaque", "security.capability",
                                     "user.overlay.opaque"]}]
    elif kind == "bad-uid":
        entries = [{"type": "file", "path": "uid-file", "data": "x", "uid": 70000}]
        needle = "70000"
    elif kind == "bad-whiteout":
        entries = [{"type": "raw", "path": "etc/.wh..wh.foo"}]
        needle = ".wh..wh.foo"
    elif kind == "bad-whiteout-empty":
        entries = [{"type": "raw", "path": "etc/.wh."}]
        needle = "etc/.wh."
    elif kind == "long-path":
        entries = [{"type": "file", "path": "/".join(["l" * 200] * 25), "data": "x"}]
        needle = "longer than"
    elif kind == "deep-path":
        entries = [{"type": "file", "path": "/".join(["d"] * 300) + "/deep", "data": "x"}]
        needle = "deeper than"
    elif kind == "not-tar":
        with open(out, "wb") as f:
            f.write(hashlib.sha512(b"not a tar").digest() * 64)
        return {"kind": kind, "expect": expect, "needle": "", "checks": []}

    layer = Layer(layer_from_entries(ok + entries), "gzip")
    layers = base_layers + [layer]
    if kind == "bad-digest":
        def tb(blobs, ls):
            blobs[ls[-1].digest] = blobs[ls[-1].digest][:-1] + bytes([blobs[ls[-1].digest][-1] ^ 1])
        tamper["blobs"] = tb
        needle = "sha256:" + layer.digest
    elif kind == "bad-size":
        def tm(man):
            man["layers"][-1]["size"] += 1
        tamper["manifest"] = tm
        needle = "sha256:" + layer.digest
    elif kind == "bad-diffid":
        def tc(cfg):
            cfg["rootfs"]["diff_ids"][-1] = "sha256:" + (steal or "1" * 64)
        tamper["config"] = tc
        needle = "diff_id"
    elif kind == "huge-manifest":
        def tm2(man):
            man["annotations"] = {"pad": "x" * (5 << 20)}
        tamper["manifest"] = tm2
        needle = "larger than"
    elif kind == "huge-config":
        def tc2(cfg):
            cfg["config"]["Labels"] = {"pad": "x" * (5 << 20)}
        tamper["config"] = tc2
        needle = "larger than"
    elif kind == "outer-dotdot":
        tamper["extra"] = [("../../../../../../" + t + "/outer-pwned", b"x")]
        needle = "outer-pwned"
    elif kind == "outer-symlink":
        def tb2(blobs, ls):
            del blobs[ls[-1].digest]
        tamper["blobs"] = tb2
        tamper["extra"] = [("blobs/sha256/" + layer.digest, ("symlink", "/etc/passwd"))]
        needle = "sha256:" + layer.digest
    build_oci(out, layers, opts, base_cfg, tamper)
    return {"kind": kind, "expect": expect, "needle": needle or "", "checks": checks}


# ---------------------------------------------------------------- check-layer

def check_layer(root, checks):
    bad = 0
    types = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK, "chardev": stat.S_ISCHR}
    for c in checks:
        p = os.path.join(root, c["path"])
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            st = None
        if c.get("exists", True) != (st is not None):
            print("check-layer: %s: exists=%s expected %s" % (c["path"], st is not None, c.get("exists", True)))
            bad += 1
            continue
        if st is None:
            continue
        if "type" in c and not types[c["type"]](st.st_mode):
            print("check-layer: %s: not a %s (mode %o)" % (c["path"], c["type"], st.st_mode))
            bad += 1
        if "mode" in c and "%04o" % stat.S_IMODE(st.st_mode) != c["mode"]:
            print("check-layer: %s: mode %04o expected %s" % (c["path"], stat.S_IMODE(st.st_mode), c["mode"]))
            bad += 1
        have = set(os.listxattr(p, follow_symlinks=False)) if not stat.S_ISLNK(st.st_mode) else set()
        for x in c.get("xattrs_absent", []):
            if x in have:
                print("check-layer: %s: xattr %s present" % (c["path"], x))
                bad += 1
        for x in c.get("xattrs_present", []):
            if x not in have:
                print("check-layer: %s: xattr %s missing" % (c["path"], x))
                bad += 1
    return 1 if bad else 0


# ---------------------------------------------------------------- command line

def default_opts():
    return {"name": None, "ref_name": None, "containerd_name": None, "nested": False, "env": [], "cmd": None,
            "entrypoint": None, "workdir": None, "user": None, "docker_legacy": False}


def main(argv):
    if len(argv) < 2:
        sys.stdout.write(__doc__)
        return 2
    mode = argv[1]
    if mode == "hostile":
        if len(argv) >= 3 and argv[2] == "--list":
            for k in sorted(HOSTILE):
                print(k, HOSTILE[k][0])
            return 0
        if len(argv) < 4:
            die("usage: hostile KIND OUT.tar [--target DIR] [--base OCI.tar]")
        kind, out = argv[2], argv[3]
        target, base, steal = "/tmp/pbox-hostile-sentinel", None, None
        rest = argv[4:]
        while rest:
            if rest[0] == "--target" and len(rest) > 1:
                target = rest[1]
            elif rest[0] == "--base" and len(rest) > 1:
                base = rest[1]
            elif rest[0] == "--steal-diffid" and len(rest) > 1:
                steal = rest[1]
            else:
                die("bad argument %r" % rest[0])
            rest = rest[2:]
        if not target.startswith("/"):
            die("--target must be absolute")
        print(json.dumps(hostile(kind, out, target.rstrip("/"), base, steal)))
        return 0
    if mode == "check-layer":
        if len(argv) != 4:
            die("usage: check-layer LAYER_DIR CHECKS_JSON")
        return check_layer(argv[2], json.loads(argv[3]))
    if mode not in ("oci", "docker") or len(argv) < 3:
        die("usage: mkimage.py oci|docker OUT.tar [options] (see --help)")
    out = argv[2]
    opts = default_opts()
    layers, base_cfg, how = [], None, "gzip"
    args = argv[3:]
    i = 0

    def val():
        if i + 1 >= len(args):
            die("%s needs a value" % args[i])
        return args[i + 1]
    while i < len(args):
        a = args[i]
        if a == "--name":
            opts["name"] = val()
        elif a == "--ref-name":
            opts["ref_name"] = val()
        elif a == "--containerd-name":
            opts["containerd_name"] = val()
        elif a == "--nested":
            opts["nested"] = True
            i += 1
            continue
        elif a == "--docker-legacy":
            opts["docker_legacy"] = True
            i += 1
            continue
        elif a == "--base":
            bl, base_cfg = read_base(val())
            layers = bl + layers
        elif a == "--compress":
            how = val()
            if how not in MT_LAYER:
                die("--compress: none, gzip or zstd")
        elif a == "--env":
            opts["env"].append(val())
        elif a in ("--cmd", "--entrypoint"):
            opts[a[2:]] = json.loads(val())
        elif a == "--workdir":
            opts["workdir"] = val()
        elif a == "--user":
            opts["user"] = val()
        elif a == "--layer":
            spec = val()
            if os.path.isdir(spec):
                tar = layer_from_dir(spec)
            else:
                if spec.startswith("@"):
                    with open(spec[1:]) as f:
                        spec = f.read()
                tar = layer_from_entries(json.loads(spec))
            layers.append(Layer(tar, how))
        else:
            die("unknown argument %r" % a)
        i += 2
    if mode == "oci":
        res = build_oci(out, layers, opts, base_cfg)
    else:
        res = build_docker(out, layers, opts, base_cfg)
    res["layers"] = ["sha256:" + l.diff_id for l in layers]
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
