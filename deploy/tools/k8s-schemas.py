#!/usr/bin/env python3
"""Kubernetes JSON schemas for kubeconform, offline, from the kubernetes-validate wheel (PyPI).

The wheel vendors the schemas of each Kubernetes release as `vX.Y.Z-local-strict/<kind>.json`,
generated from the release's OpenAPI document, whose `$ref`s point into one shared
`/api/_definitions.json` (a path only kubernetes-validate's own resolver knows). kubeconform wants
standalone schemas, so each kind's file is written with the definitions it reaches (transitively)
bundled under `definitions` and its refs rewritten to `#/definitions/<name>`, under the path
kubeconform's default template expects: `vX.Y.Z-standalone-strict/<kind>-<group>-<version>.json`.

Only top-level kinds (schemas with a `kind` enum) are written: kubeconform looks up nothing else.
Usage: k8s-schemas.py WHEEL OUT_DIR VERSION...   (standard library only)
"""
import json
import os
import sys
import zipfile


def bundle(schema, definitions):
    """Rewrites every $ref in `schema` in place; returns the definitions it needs, closed over refs."""
    needed = {}
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and "#/$defs/" in value:
                    name = value.split("#/$defs/", 1)[1]
                    node[key] = "#/definitions/" + name
                    if name not in needed:
                        # a copy: the shared definition is rewritten once per bundle that needs it
                        needed[name] = json.loads(json.dumps(definitions[name]))
                        pending.append(needed[name])
                else:
                    pending.append(value)
        elif isinstance(node, list):
            pending.extend(node)
    return needed


def main(wheel, out_dir, versions):
    with zipfile.ZipFile(wheel) as z:
        for version in versions:
            v = version if version.startswith("v") else "v" + version
            src = f"kubernetes_validate/kubernetes-json-schema/{v}-local-strict/"
            names = [n for n in z.namelist() if n.startswith(src) and n.endswith(".json")]
            if not names:
                sys.exit(f"{wheel} has no schemas for {v}")
            definitions = json.loads(z.read(src + "_definitions.json"))["$defs"]
            dest = os.path.join(out_dir, f"{v}-standalone-strict")
            os.makedirs(dest, exist_ok=True)
            written = 0
            for name in names:
                base = name[len(src):]
                if base in ("_definitions.json", "all.json"):
                    continue
                schema = json.loads(z.read(name))
                if "enum" not in schema.get("properties", {}).get("kind", {}):
                    continue
                schema["definitions"] = bundle(schema, definitions)
                with open(os.path.join(dest, base), "w") as f:
                    json.dump(schema, f, separators=(",", ":"))
                written += 1
            print(f"{dest}: {written} kinds")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
