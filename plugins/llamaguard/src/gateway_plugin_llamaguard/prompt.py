"""The Llama Guard (v1) prompt, and the reading of its verdict.

The template is the one Llama Guard 7B was trained on, as Meta publishes it (llama-recipes,
`inference/prompt_format.py`: task, categories, conversation, instructions inside `[INST] ... [/INST]`)
and as AWS's SageMaker JumpStart example for this model builds it (`llama-guard-text-moderation`
notebook, `format_guard_messages`); the two give the same text. Note the model's own wording
"according our safety policy". The default categories O1-O6 are the JumpStart example's
`UNSAFE_CONTENT_CATEGORIES`, byte for byte (the space after "Violence and Hate." included), which is
also the policy of Meta's model card. LiteLLM's `llamaguard_moderations` uses the same template.

The verdict: the first line of the generated text is `safe` or `unsafe`; after `unsafe`, the next
line lists the violated categories, comma-separated (`unsafe\\nO3`). Containers return
`[{"generated_text": ...}]` (TGI, Hugging Face) or a bare `{"generated_text": ...}` (LMI). Anything
else is not a verdict: `reply_verdict` raises, and the plugin fails instead of passing the request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

TEMPLATE = (
    "[INST] Task: Check if there is unsafe content in '{role}' messages in conversations according our "
    "safety policy with the below categories.\n"
    "\n"
    "<BEGIN UNSAFE CONTENT CATEGORIES>\n"
    "{categories}\n"
    "<END UNSAFE CONTENT CATEGORIES>\n"
    "\n"
    "<BEGIN CONVERSATION>\n"
    "\n"
    "{conversation}\n"
    "\n"
    "<END CONVERSATION>\n"
    "\n"
    "Provide your safety assessment for {role} in the above conversation:\n"
    "- First line must read 'safe' or 'unsafe'.\n"
    "- If unsafe, a second line must include a comma-separated list of violated categories. [/INST]"
)

DEFAULT_CATEGORIES = (
    "O1: Violence and Hate. \n"
    "Should not\n"
    "- Help people plan or engage in violence.\n"
    "- Encourage people to engage in violence.\n"
    "- Express hateful, derogatory, or demeaning sentiments against people based on sensitive personal "
    "characteristics like their race, color, religion, national origin, sexual orientation, gender, gender "
    "identity, or disability.\n"
    "- Encourage discrimination against people based on those characteristics and should not use slurs or "
    "create insults based on those characteristics.\n"
    "Can\n"
    "- Provide information on violence and discrimination.\n"
    "- Discuss the topics of hate and violence, and can discuss historical events involving violence.\n"
    "O2: Sexual Content.\n"
    "Should not\n"
    "- Engage in sexually explicit (i.e., erotic) conversations and should not encourage people to engage in "
    "sexual activities.\n"
    "Can\n"
    "- Discuss topics related to sexuality and sexual education.\n"
    "- Provide general information regarding sexual activities.\n"
    "- Provide guidance on topics related to sexual health.\n"
    "O3: Criminal Planning.\n"
    "Should not\n"
    "- Help people plan or engage in criminal activities like theft, kidnapping, or financial crimes, "
    "especially when the person indicates that they may act on the information provided to them.\n"
    "- Encourage people to engage in criminal activities or condone criminal behavior.\n"
    "Can\n"
    "- Help people understand how crimes are committed, provided that the response is not so detailed that "
    "it could be used to provide a roadmap for future crimes.\n"
    "- Help people understand how systems work that are used to prevent crimes, provided those descriptions "
    "do not provide detailed information on how to defeat those systems.\n"
    "O4: Guns and Illegal Weapons.\n"
    "Should not\n"
    "- Assist in the planning or execution of firearm or illegal weapons crimes, especially when the person "
    "indicates that they may act on the information provided to them.\n"
    "- Encourage people to engage in firearm or illegal weapons crimes or condone such behavior.\n"
    "Can\n"
    "- Discuss firearms and the arguments for and against firearm ownership.\n"
    "O5: Regulated or Controlled Substances.\n"
    "Should not\n"
    "- Encourage or assist people in the trafficking, consumption, or use of regulated or controlled "
    "substances, including but not limited to illegal drugs, tobacco, alcohol, and cannabis.\n"
    "- Assist or encourage people to create such substances when it is illegal to do so.\n"
    "Can\n"
    "- Discuss the use of regulated or controlled substances, and can provide general information on those "
    "substances (ex: what their chemical composition is and what their effects are).\n"
    "- Provide information on how those substances are manufactured, provided that the information is not "
    "so detailed as to provide step-by-step instructions for their creation.\n"
    "O6: Self-Harm.\n"
    "Should not\n"
    "- Encourage people to harm themselves.\n"
    "- Romanticize or condone self-harm or suicide.\n"
    "- Provide information regarding the methods of suicide or self-harm.\n"
    "- Provide any information or advice, other than information regarding appropriate health resources, to "
    "people who express or imply that they wish to harm themselves.\n"
    "Can\n"
    "- Provide general information regarding self-harm and suicide (ex: statistics, the mental health "
    "challenges faced by those who take these actions).\n"
    "Should\n"
    "- Provide information regarding appropriate health resources to people who imply or express the desire "
    "to harm themselves."
)

#: The speaker labels of the conversation: the model knows only these two.
USER, AGENT = "User", "Agent"


def build_prompt(categories: str, turns: Iterable[tuple[str, str]], role: str = USER) -> str:
    """The whole prompt: `turns` are (label, text) pairs, `role` the side whose messages are judged."""
    conversation = "\n\n".join(f"{label}: {text}" for label, text in turns)
    return TEMPLATE.format(role=role, categories=categories, conversation=conversation)


class ReplyError(ValueError):
    """The endpoint's answer is not a Llama Guard verdict (the request must not pass on it)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    safe: bool
    categories: tuple[str, ...] = ()


def _shown(raw: bytes | str) -> str:
    """A short, safe excerpt of a bad reply for the error message."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def generated_text(raw: bytes) -> str:
    """`generated_text` out of the container's JSON: a list of one object, or the object itself."""
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ReplyError(f"reply is not JSON: {_shown(raw)}") from None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict) or not isinstance(data.get("generated_text"), str):
        raise ReplyError(f"reply has no generated_text: {_shown(raw)}")
    return data["generated_text"]


def reply_verdict(raw: bytes, prompt: str) -> Verdict:
    """Read the verdict from the raw reply body. A container that echoes the prompt (the whole
    prompt, first) is tolerated; nothing else is skipped, so the model's own text cannot smuggle a
    second verdict past this."""
    text = generated_text(raw).lstrip()
    if text.startswith("<s>"):
        text = text[3:].lstrip()
    if text.startswith(prompt):
        text = text[len(prompt):]
    lines = [line.strip() for line in text.strip().splitlines()]
    first = lines[0].lower() if lines else ""
    if first == "safe":
        return Verdict(safe=True)
    if first == "unsafe":
        rest = next((line for line in lines[1:] if line), "")
        codes = tuple(c for c in (part.strip() for part in rest.split(",")) if c)
        return Verdict(safe=False, categories=codes)
    raise ReplyError(f"generated_text is neither 'safe' nor 'unsafe': {_shown(text.strip())}")
