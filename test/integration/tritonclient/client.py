"""NVIDIA's own Python client (tritonclient[http]) against `breakid serve`: every call a Triton user
makes, each of which raises InferenceServerException on an HTTP error. Prints what it saw as JSON.

  python client.py <host:port> <model> <model to load and unload> [header=value ...]
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient


def main():
    url, model, extra = sys.argv[1], sys.argv[2], sys.argv[3]
    headers = dict(h.split("=", 1) for h in sys.argv[4:]) or None
    client = httpclient.InferenceServerClient(url=url)
    out = {}
    out["live"] = client.is_server_live(headers=headers)
    out["ready"] = client.is_server_ready(headers=headers)
    out["extensions"] = client.get_server_metadata(headers=headers)["extensions"]

    # model repository: load, ready, unload
    out["index_before"] = [m["name"] for m in client.get_model_repository_index(headers=headers)]
    client.load_model(extra, headers=headers)
    out["loaded_ready"] = client.is_model_ready(extra, headers=headers)
    client.unload_model(extra, headers=headers)
    out["unloaded_ready"] = client.is_model_ready(extra, headers=headers)

    # metadata and configuration
    meta = client.get_model_metadata(model, headers=headers)
    config = client.get_model_config(model, headers=headers)
    versioned = client.get_model_config(model, model_version=meta["versions"][0], headers=headers)
    out["config"] = config
    out["config_versioned_equal"] = versioned == config

    # inference: binary and JSON outputs, gzip and deflate request bodies, a gzip response asked for
    spec = meta["inputs"][0]
    rows = 3
    shape = [rows] + [d for d in spec["shape"][1:]]
    data = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    inputs = [httpclient.InferInput(spec["name"], shape, spec["datatype"])]
    inputs[0].set_data_from_numpy(data, binary_data=True)
    output_name = meta["outputs"][0]["name"]
    results = []
    for binary, request_compression, response_compression in [
        (True, None, None),
        (False, None, None),
        (True, "gzip", None),
        (False, "deflate", None),
        (True, "gzip", "gzip"),
    ]:
        outputs = [httpclient.InferRequestedOutput(output_name, binary_data=binary)]
        result = client.infer(
            model,
            inputs,
            outputs=outputs,
            request_id=f"tc-{len(results)}",
            headers=headers,
            request_compression_algorithm=request_compression,
            response_compression_algorithm=response_compression,
        )
        array = result.as_numpy(output_name)
        results.append({"shape": list(array.shape), "first": float(array.flatten()[0]), "id": result.get_response()["id"]})
    out["infer"] = results

    # statistics: all models, one model, one version
    out["stats_all"] = [m["name"] for m in client.get_inference_statistics(headers=headers)["model_stats"]]
    out["stats"] = client.get_inference_statistics(model, headers=headers)["model_stats"]
    out["stats_version"] = client.get_inference_statistics(model, model_version=meta["versions"][0], headers=headers)[
        "model_stats"
    ]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
