"""Pod volumes as plain directories, and the container environment built from the pod spec.

Processes are not chrooted, so a volumeMount's ``mountPath`` cannot exist as such.
What we chose (documented for users of the local cluster):

* every volume is a directory ``<workdir>/pods/<uid>/volumes/<volume>``;
* each container gets ``GAMEDAY_MOUNT_<VOLUME>`` (upper case, non-alphanumerics -> ``_``)
  naming that directory, and
* any env value, command or arg that starts with a mountPath (``/etc/demo/config.yaml``)
  is rewritten to the local directory (``.../volumes/config/config.yaml``).

configMap and secret volumes hold one file per key (or per ``items`` entry) and are
rewritten atomically when the ConfigMap changes; emptyDir is an empty directory.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]  # (namespace, name) -> object or None

_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def mount_env_name(volume: str) -> str:
    return "GAMEDAY_MOUNT_" + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers never see half a file
    return True


def _key_files(source: Obj, data: dict[str, bytes]) -> dict[str, bytes]:
    items = source.get("items")
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item.get("key") in data}


def _configmap_bytes(cm: Obj) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


def _secret_bytes(secret: Obj) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    out.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def sync_volumes(pod: Obj, root: Path, configmaps: Lookup, secrets: Lookup) -> dict[str, Path]:
    """Create or refresh every supported volume; returns volume name -> local directory."""
    namespace = pod["metadata"]["namespace"]
    dirs: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        path = root / volume["name"]
        path.mkdir(parents=True, exist_ok=True)
        dirs[volume["name"]] = path
        files: dict[str, bytes] | None = None
        if "configMap" in volume:
            cm = configmaps(namespace, volume["configMap"].get("name", ""))
            files = _key_files(volume["configMap"], _configmap_bytes(cm)) if cm else {}
        elif "secret" in volume:
            secret = secrets(namespace, volume["secret"].get("secretName", ""))
            files = _key_files(volume["secret"], _secret_bytes(secret)) if secret else {}
        if files is None:
            continue  # emptyDir and friends: the directory is the volume
        for rel, data in files.items():
            _write_if_changed(path / rel, data)
        for old in path.rglob("*"):
            if old.is_file() and str(old.relative_to(path)) not in files:
                old.unlink()
    return dirs


def referenced_configmaps(pod: Obj) -> set[str]:
    names = {v["configMap"].get("name", "") for v in pod["spec"].get("volumes") or [] if "configMap" in v}
    return {f"{pod['metadata']['namespace']}/{n}" for n in names}


def mount_map(container: Obj, volumes: dict[str, Path]) -> dict[str, Path]:
    """mountPath -> local directory (or file, with subPath) for one container."""
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        local = volumes.get(mount["name"])
        if local is not None:
            mounts[mount["mountPath"].rstrip("/") or "/"] = local / mount.get("subPath", "")
    return mounts


def rewrite_paths(value: str, mounts: dict[str, Path]) -> str:
    """Point a path under a mountPath (whole value, or after '=' as in --config=/x) at the local dir."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        pattern = re.compile(r"(^|=)" + re.escape(mount_path) + r"(?=/|$)")
        local = str(mounts[mount_path]).rstrip("/")
        value = pattern.sub(lambda m, local=local: str(m.group(1)) + local, value)  # type: ignore[misc]
    return value


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion; unknown references stay as written."""
    return _REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def field_value(pod: Obj, path: str, pod_ip: str) -> str:
    meta = pod["metadata"]
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    return ""


def container_env(pod: Obj, container: Obj, base: dict[str, str], pod_ip: str,
                  configmaps: Lookup, secrets: Lookup) -> dict[str, str]:
    """The image env, then envFrom, then env (with valueFrom), in Kubernetes order."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            obj = configmaps(namespace, source["configMapRef"]["name"]) or {}
            env.update({prefix + k: str(v) for k, v in (obj.get("data") or {}).items()})
        elif "secretRef" in source:
            obj = secrets(namespace, source["secretRef"]["name"]) or {}
            env.update({prefix + k: v.decode(errors="replace") for k, v in _secret_bytes(obj).items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        ref = var.get("valueFrom") or {}
        if "fieldRef" in ref:
            env[name] = field_value(pod, ref["fieldRef"]["fieldPath"], pod_ip)
        elif "configMapKeyRef" in ref:
            obj = configmaps(namespace, ref["configMapKeyRef"]["name"]) or {}
            value = (obj.get("data") or {}).get(ref["configMapKeyRef"]["key"])
            if value is not None:
                env[name] = str(value)
        elif "secretKeyRef" in ref:
            obj = secrets(namespace, ref["secretKeyRef"]["name"]) or {}
            data = _secret_bytes(obj).get(ref["secretKeyRef"]["key"])
            if data is not None:
                env[name] = data.decode(errors="replace")
        else:
            env[name] = ""
    return env
