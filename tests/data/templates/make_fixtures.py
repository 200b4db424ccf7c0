#!/usr/bin/env python3
"""Expected renders of the chat templates here, made by Python's jinja2 (Debian's
python3-jinja2) in the environment transformers' apply_chat_template uses: trim_blocks,
lstrip_blocks, the loopcontrols extension, tojson as json.dumps (ensure_ascii off),
raise_exception and strftime_now (with a fixed clock, 2026-12-06 12:00 UTC).

    python3 make_fixtures.py        # rewrites expected.json

Each template is rendered for each conversation of conversations.json; a render that
raises is recorded as {"error": true}.
"""
import datetime
import glob
import json
import os

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.timezone.utc)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: NOW.strftime(fmt)
    conversations = json.load(open(os.path.join(here, "conversations.json")))
    expected = {}
    for path in sorted(glob.glob(os.path.join(here, "*.jinja"))):
        name = os.path.basename(path)
        template = env.from_string(open(path).read())
        expected[name] = {}
        for conv in conversations:
            ctx = dict(conv["context"])
            ctx.setdefault("bos_token", "<s>")
            ctx.setdefault("eos_token", "</s>")
            try:
                expected[name][conv["name"]] = {"render": template.render(**ctx)}
            except Exception as e:  # noqa: BLE001 - any template error is an expected error
                expected[name][conv["name"]] = {"error": True, "message": str(e)}
    with open(os.path.join(here, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
