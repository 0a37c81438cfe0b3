"""Load a PEFT adapter folder whet exported (output.adapter_only) with PEFT itself, over its base
model, and check that every saved tensor landed in the model (tests/export_formats.rs runs this
when `import peft` works).

usage: peft_load_check.py ADAPTER_DIR NUM_LABELS

The base is the adapter config's base_model_name_or_path, loaded as the config's task_type
says (SEQ_CLS with NUM_LABELS labels, CAUSAL_LM). Fails when PEFT reports an unexpected key
(a tensor it could not place) or when a loaded adapter weight differs from the file's.
Prints "peft_load_check: ok N tensors" on success.
"""

import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file


def main(adapter_dir, num_labels):
    import transformers

    config = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    base_path = config["base_model_name_or_path"]
    if config["task_type"] == "SEQ_CLS":
        base = transformers.AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=int(num_labels))
    elif config["task_type"] == "CAUSAL_LM":
        base = transformers.AutoModelForCausalLM.from_pretrained(base_path)
    else:
        base = transformers.AutoModel.from_pretrained(base_path)
    model = PeftModel.from_pretrained(base, adapter_dir)
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    state = model.state_dict()
    failures = []
    for key, value in saved.items():
        # PEFT keeps the adapter name in memory: lora_A.default.weight, modules_to_save.default.*.
        module, leaf = key.rsplit(".", 1)
        if module.endswith((".lora_A", ".lora_B")):
            loaded = f"{module}.default.{leaf}"
        else:
            loaded = f"{module}.modules_to_save.default.{leaf}"
        if loaded not in state:
            failures.append(f"{key}: not in the PEFT model (looked for {loaded})")
        elif not torch.equal(state[loaded].to(value.dtype).cpu(), value):
            failures.append(f"{key}: loaded values differ from the file's")
    for f in failures:
        print("peft_load_check:", f)
    if failures:
        sys.exit(1)
    print(f"peft_load_check: ok {len(saved)} tensors")


if __name__ == "__main__":
    main(*sys.argv[1:3])
