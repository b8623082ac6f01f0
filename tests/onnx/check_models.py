#!/usr/bin/python3
"""Runs onnx.checker (full_check: the graph, the types, shape inference) on every model that
test_onnx wrote, and checks what the exporter promises: producer, IR version, opset, a symbolic
batch dim, initializer names among the node inputs.  Usage: check_models.py DIR"""
import sys

import onnx


def main(folder):
    names = [line.split()[0] for line in open(f"{folder}/models.txt") if line.strip()]
    failed = 0
    for name in names:
        model = onnx.load(f"{folder}/{name}.onnx")
        try:
            onnx.checker.check_model(model, full_check=True)
            assert model.producer_name == "libcvnet", model.producer_name
            assert model.ir_version == 8, model.ir_version
            assert [o.version for o in model.opset_import] == [17]
            batch = model.graph.input[0].type.tensor_type.shape.dim[0]
            assert batch.dim_param == "batch", batch
            used = {i for n in model.graph.node for i in n.input}
            unused = [t.name for t in model.graph.initializer if t.name not in used]
            assert not unused, f"initializers no node reads: {unused}"
            ops = sorted({n.op_type for n in model.graph.node})
            print(f"onnx.checker: {name}: ok ({len(model.graph.node)} nodes: {' '.join(ops)})")
        except Exception as e:  # report every model, then fail
            print(f"onnx.checker: {name}: FAILED: {e}")
            failed += 1
    print(f"onnx.checker: {len(names) - failed} of {len(names)} models pass full_check")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
