r"""The text of a streamed reply, per choice, with a hold-back window.

A streamed reply arrives in chunks, and the upstream cuts them wherever it likes: a secret or a
banned word can be split over two, three or twenty chunks. A plugin that must find or rewrite such
a token in its `stream_chunk` hook feeds each chunk to its `StreamText` and gets back one
`StreamWindow` per choice of the chunk that carries text or finishes. A window's `text` is what the
plugin held back from that choice's earlier chunks followed by the chunk's new text; the plugin
reads it, holds back the end that could still grow into a match (`window.hold(n)`), and may
rewrite the rest (`window.released = ...`). The rest goes out in this chunk; what is held goes out
with a later chunk of the same choice, at the latest with its `finish_reason`, when nothing can be
held.

    from gateway import StreamText, hookimpl

    EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")  # an address has no whitespace
    LAST_WORD = re.compile(r"\S*\Z")

    @hookimpl
    async def stream_chunk(self, ctx, chunk):
        for window in StreamText.of(ctx, self.name, max_hold=256).feed(chunk):
            window.hold(len(LAST_WORD.search(window.text).group()))  # it may still grow
            window.released = EMAIL.sub("[email]", window.released)

Rules, in the order a plugin meets them:

- **What a window is.** Chat chunks carry text in `choices[i].delta.content`, text completions in
  `choices[i].text`; a chunk may carry several choices (`n > 1`), each with its own window and its
  own held text. A choice that carries no text (a role, a tool call, a null content) and does not
  finish gets no window and keeps its held text waiting. Usage-only chunks (`choices: []`) get none.
- **Writing is eager.** The window writes the chunk as soon as it exists, with everything released
  (held text first, then the new text), and again on every `text =` and `hold()`. So a plugin that
  raises half-way (to block, or a bug) never loses held text: in `mode: monitor` or `fail_open`
  the stream goes on with the text in order. A chunk whose text is all held goes on with an empty
  string (`"content": ""` / `"text": ""`), which every OpenAI SDK reads as no text; a chunk that had
  no text key gets one only when text is released into it.
- **Holding.** `hold(n)` keeps the last `n` characters of the text for the next window of that
  choice, at most `max_hold` (so a stream never waits on more than that). A window with `final`
  True (its chunk carries `finish_reason`) releases everything: `hold()` does nothing there.
- **Hold, then rewrite what leaves.** Decide what to hold on the text as it arrived: from the first
  place where a match could still begin and grow with more text (for words without spaces, the
  unfinished last word; for a word list, the first position whose rest is the start of a listed
  word). Then rewrite `window.released`: the held part stays as it came, and is read again with
  the next text. (Rewriting all of `window.text` first is right only when no match can be the
  start of a longer one.) Setting `window.text` rewrites the whole window; holds are kept within it.
- **State.** `StreamText.of(ctx, name)` keeps one instance per request in `ctx.state_for(name)`,
  so each plugin has its own windows: a plugin later in the chain sees the text an earlier one
  released, and the earlier one's held text when it releases it.
- **Ends.** Held text leaves only with a later chunk of its choice. A choice that never finishes
  keeps it: an upstream that closes the stream before any `finish_reason` gets the client an
  error event anyway, and one that sends `[DONE]` with a choice unfinished ends the stream without
  that choice's held text (dropped, never sent unchecked). `logprobs` do not move with held text.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StreamText", "StreamWindow"]

#: Where a `StreamText.of` instance lives in a plugin's per-request state.
_STATE_KEY = "stream_text"


class StreamWindow:
    """One choice's text in one chunk: the text held from earlier chunks, then the new text.

    - `index`: the choice's index; `new`: the text this chunk brought (before any rewrite);
      `final`: the chunk carries the choice's `finish_reason` (nothing can be held).
    - `text`: the whole window; assign to rewrite it (the chunk is updated at once).
    - `hold(n)`: keep its last `n` characters for the choice's next chunk.
    - `released` / `held`: what goes out in this chunk / what waits.
    """

    __slots__ = ("index", "new", "final", "_stream", "_choice", "_chat", "_text", "_keep", "_write_empty")

    def __init__(self, stream: StreamText, choice: dict[str, Any], chat: bool, index: int, held: str,
                 new: str, final: bool, had_text: bool) -> None:
        self.index = index
        self.new = new
        self.final = final
        self._stream = stream
        self._choice = choice
        self._chat = chat
        self._keep = 0
        self._write_empty = had_text  # the chunk had a text value: keep one, even if empty
        if held:
            self._text = held + new
            self._apply()
        else:
            self._text = new  # the chunk already carries exactly this, and nothing is held

    @property
    def text(self) -> str:
        """The window's text: held text, then new text (as rewritten so far)."""
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"StreamWindow.text must be a str, not {type(value).__name__}")
        self._text = value
        if self._keep > len(value):
            self._keep = len(value)
        self._apply()

    @property
    def released(self) -> str:
        """What this chunk carries to the client for this choice; assign to rewrite only that
        part (the held part stays as it is, to be read again with the next text)."""
        return self._text[: len(self._text) - self._keep]

    @released.setter
    def released(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"StreamWindow.released must be a str, not {type(value).__name__}")
        self._text = value + self.held
        self._apply()

    @property
    def held(self) -> str:
        """What waits for the choice's next chunk."""
        return self._text[len(self._text) - self._keep:] if self._keep else ""

    def hold(self, chars: int) -> None:
        """Keep the last `chars` characters of `text` for the choice's next chunk (0: release
        everything). Capped at the stream's `max_hold` and at the text's length; ignored on a
        `final` window."""
        if self.final:
            return
        chars = max(0, min(int(chars), len(self._text)))
        limit = self._stream.max_hold
        if limit is not None and chars > limit:
            chars = limit
        if chars != self._keep:
            self._keep = chars
            self._apply()

    def _apply(self) -> None:
        text = self._text
        cut = len(text) - self._keep
        out = text[:cut]
        if out or self._write_empty:
            choice = self._choice
            if self._chat:
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    delta = choice["delta"] = {}
                delta["content"] = out
            else:
                choice["text"] = out
            self._write_empty = True  # written once: an emptied value stays, as an empty string
        if self._keep:
            self._stream._held[self.index] = text[cut:]
        else:
            self._stream._held.pop(self.index, None)

    def __repr__(self) -> str:
        return (f"StreamWindow(index={self.index}, text={self._text!r}, held={self.held!r}, "
                f"final={self.final})")


class StreamText:
    """The per-choice text of one streamed reply, with a hold-back window (see the module doc).

    Get one per request and plugin with `StreamText.of(ctx, self.name)`; feed it every chunk the
    `stream_chunk` hook sees, in order, and work on the windows it returns.
    """

    __slots__ = ("max_hold", "_held")

    def __init__(self, max_hold: int | None = None) -> None:
        if max_hold is not None and max_hold < 0:
            raise ValueError("max_hold must be >= 0")
        #: The most characters one choice ever holds back (None: no limit).
        self.max_hold = max_hold
        self._held: dict[int, str] = {}

    @classmethod
    def of(cls, ctx: Any, owner: str, max_hold: int | None = None) -> StreamText:
        """The instance of plugin `owner` for this request, kept in `ctx.state_for(owner)`
        (created on the first call, with `max_hold`; later calls return the same one)."""
        state = ctx.state_for(owner)
        stream = state.get(_STATE_KEY)
        if stream is None:
            stream = state[_STATE_KEY] = cls(max_hold)
        return stream

    def feed(self, chunk: dict[str, Any]) -> list[StreamWindow]:
        """One window per choice of `chunk` that carries text or finishes, in the chunk's order.
        The chunk is already written (everything released) when this returns."""
        choices = chunk.get("choices") if type(chunk) is dict else None
        if not choices or type(choices) is not list:
            return []
        windows: list[StreamWindow] = []
        for choice in choices:
            if type(choice) is not dict:
                continue
            delta = choice.get("delta")
            if delta is not None:
                chat = True
                value = delta.get("content") if type(delta) is dict else None
            elif "text" in choice:
                chat = False
                value = choice["text"]
            else:  # neither: the chunk's object says which
                chat = chunk.get("object") != "text_completion"
                value = None
            final = bool(choice.get("finish_reason"))
            if isinstance(value, str):
                if not value and not final:
                    continue
                had_text = True
            elif final:
                value, had_text = "", False
            else:
                continue  # no text here: what is held waits for this choice's next text
            index = choice.get("index", 0)
            if type(index) is not int:
                index = 0
            held = self._held.pop(index, "") if self._held else ""
            windows.append(StreamWindow(self, choice, chat, index, held, value, final, had_text))
        return windows

    def held(self, index: int = 0) -> str:
        """The text choice `index` is holding back now."""
        return self._held.get(index, "")

    @property
    def pending(self) -> dict[int, str]:
        """Every choice's held text (a copy); empty once every choice has released its text."""
        return dict(self._held)

    def __repr__(self) -> str:
        return f"StreamText(max_hold={self.max_hold}, pending={self._held!r})"
