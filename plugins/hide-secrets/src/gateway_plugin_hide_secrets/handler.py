"""The plugin: redact secrets from a request's text in `pre_request`, before it leaves the gateway;
with `hide_secrets_redact_replies`, from replies too (`post_response`, and `stream_chunk` for streams).

Threading: detect-secrets is not thread-safe and its scans are pure CPU (about a millisecond per
KiB when every line is scanned). All of it runs in one dedicated thread per plugin instance (a
single-worker executor): the engine is built there at start-up, and every scan is a job awaited
with `run_in_executor`, so the event loop never runs detect-secrets code and never waits on a lock.
Clean text never gets that far: the pre-filter (literal searches and a few small compiled regexes,
~25 us per KiB) runs on the loop and lets only text with a possible secret through, and inside the
job only the lines it picked are scanned, each with only the detectors that can fire there.
Only the detector names are checked when the plugin is created (importing detect-secrets then),
so that a typo stops the gateway before it serves.

Streams (`hide_secrets_redact_replies`) go through `gateway.StreamText`: each choice's text is cut
where nothing after the cut can still change what is found before it (`stream_cut`), the part
before the cut is redacted and sent, and the rest waits for the choice's next chunk.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

from gateway import BadRequestError, Plugin, RequestContext, StreamText, hookimpl, iter_request_text_slots, iter_response_text_slots
from gateway_plugin_hide_secrets.config import HideSecretsConfig

# Under the `gateway` logger, so the server's log level and format apply to it.
log = logging.getLogger("gateway.plugins.hide_secrets")

#: permissions.hide_secrets values that switch the plugin off for a key.
_OFF_VALUES = (False, "false", "False", "off", "no", "0", 0)


_WHITESPACE = re.compile(r"\s")
#: The first line of a multi-line secret (a PEM / SSH2 private key, a PuTTY key file) and its last.
_BLOCK_BEGIN = re.compile(r"-{4,5} ?BEGIN\b|PuTTY-User-Key-File")
_BLOCK_END = re.compile(r"-{4,5} ?END\b|Private-MAC:")
#: The text ends with what could still become a BEGIN line (`---- BEGIN` has a space in it).
_BLOCK_BEGIN_START = re.compile(r"-{4,5} ?(?:B(?:E(?:G(?:IN?)?)?)?)?\Z")


def stream_cut(text: str, may_contain: Callable[[str], bool], cap: int) -> int:
    """Where to cut one choice's streamed text: `text[:cut]` is scanned and sent, `text[cut:]`
    waits for more text. Every secret detect-secrets finds lies on one line, except a private key
    (from its BEGIN line to its END line). So what waits is:
    - the unfinished last line, when the pre-filter says it may hold a secret;
    - else only the unfinished last word (a token still growing), or a key block's first dashes;
    - and a key block whose END line is not whole yet, from its BEGIN line.
    Never more than `cap` characters wait: past that, the cut moves to the first whitespace of the
    last `cap` characters (or to the end)."""
    line = text.rfind("\n") + 1
    if may_contain(text[line:]):
        cut = line
    else:
        cut = max(line, text.rfind(" ") + 1, text.rfind("\t") + 1, text.rfind("\r") + 1)
        dashes = _BLOCK_BEGIN_START.search(text, line)
        if dashes is not None:
            cut = min(cut, dashes.start())
    begin = -1
    for m in _BLOCK_BEGIN.finditer(text):
        begin = m.start()
    if begin >= 0:
        end = _BLOCK_END.search(text, begin)
        if end is None or text.find("\n", end.end()) == -1:  # no END line yet, or not a whole one
            cut = min(cut, text.rfind("\n", 0, begin) + 1)
    if len(text) - cut > cap:
        m = _WHITESPACE.search(text, len(text) - cap)
        cut = len(text) if m is None else m.end()
    return cut


def chunks(text: str, size: int) -> Iterator[tuple[int, int]]:
    """[start, end) ranges of at most about `size` characters, cut after a newline, else after
    whitespace, never inside a token (a token longer than `size` stays whole)."""
    n = len(text)
    start = 0
    while start < n:
        end = start + size
        if end >= n:
            yield start, n
            return
        cut = text.rfind("\n", start, end)
        if cut == -1:
            cut = max(text.rfind(" ", start, end), text.rfind("\t", start, end))
        if cut == -1:
            m = _WHITESPACE.search(text, end)
            cut = n - 1 if m is None else m.start()
        yield start, cut + 1
        start = cut + 1


class HideSecrets(Plugin):
    """Redacts API keys, tokens, passwords and private keys from LLM requests (messages, prompt,
    input) before they are sent upstream, with detect-secrets' detectors."""

    name = "hide_secrets"  # the entry-point name, and the seed's callback name
    priority = 850  # transforms band (800-899): after identity and cheap limits, before remote guards
    Config = HideSecretsConfig

    config: HideSecretsConfig

    def __init__(self, config: HideSecretsConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self._executor: ThreadPoolExecutor | None = None
        self._engine: Any = None
        self._prefilter: Any = None
        self._chunk_chars = config.hide_secrets_chunk_kib * 1024
        # Refuse unknown detector names now, before serving starts (the first import of
        # detect-secrets, ~0.2 s; the engine itself is built in the scanner thread at start-up).
        from gateway_plugin_hide_secrets.engine import check_detector_names

        check_detector_names(config.hide_secrets_disabled_detectors)
        if not config.hide_secrets_redact_replies:
            # Replies are not ours to touch: leave the reply hooks unregistered (pluggy skips an
            # instance attribute that is not a function), so streams pass through unparsed.
            self.post_response = None  # type: ignore[method-assign, assignment]
            self.stream_chunk = None  # type: ignore[method-assign, assignment]

    # -- lifecycle -----------------------------------------------------------------------------
    @hookimpl
    async def startup(self, gateway: Any) -> None:
        """Start the scanner thread and build the engine in it (importing detect-secrets there)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hide-secrets")
        loop = asyncio.get_running_loop()
        try:
            self._engine = await loop.run_in_executor(self._executor, self._build_engine)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._prefilter = self._engine.prefilter
        if not self._prefilter.complete:
            log.info("hide_secrets: a detector has no pre-filter conditions; every text is scanned in full")
        log.debug("hide_secrets: detectors %s", ", ".join(self._engine.enabled))

    def _build_engine(self) -> Any:
        from gateway_plugin_hide_secrets.engine import Engine, scan_text

        engine = Engine(self.config.hide_secrets_disabled_detectors, self.config.hide_secrets_unquoted_keywords)
        # Warm up every lazy cache (filters compile their regexes on first use) in this thread.
        sample = "password = 'Warm-up-0'\nAKIA0000000000000000\n"
        scan_text(engine, sample, 0, len(sample))
        return engine

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        """Stop the scanner thread (a running job finishes; queued ones are cancelled)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # -- the request path ------------------------------------------------------------------------
    def _off_for(self, ctx: RequestContext) -> bool:
        principal = ctx.principal
        return principal is not None and principal.permissions.get("hide_secrets", True) in _OFF_VALUES

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        """Replace every secret in the request's text with `[REDACTED]`, in place."""
        if self._off_for(ctx):
            log.debug("hide_secrets did not run: key %s has permissions.hide_secrets=false",
                      ctx.principal.display_name)
            return
        slots = list(iter_request_text_slots(ctx.body))
        if not slots:
            return
        redacted, types = await self.redact([c[k] for c, k in slots])
        if not types:
            return
        for (container, key), new in zip(slots, redacted, strict=True):
            container[key] = new
        found = sorted(types)
        ctx.state_for(self.name)["types"] = found
        log.warning("Detected and redacted secrets in message: %s", found)

    @hookimpl
    async def post_response(self, ctx: RequestContext, response: dict[str, Any]) -> None:
        """A JSON reply's text (`hide_secrets_redact_replies`); a stream is redacted as it goes."""
        if ctx.stream or self._off_for(ctx):
            return
        slots = list(iter_response_text_slots(response))
        if not slots:
            return
        redacted, types = await self.redact([c[k] for c, k in slots], request=False)
        if not types:
            return
        for (container, key), new in zip(slots, redacted, strict=True):
            container[key] = new
        self._reply_redacted(ctx, types)

    @hookimpl
    async def stream_chunk(self, ctx: RequestContext, chunk: dict[str, Any]) -> None:
        """Each choice's streamed text (`hide_secrets_redact_replies`): what can no longer grow into
        a secret is redacted and sent; the rest (see `stream_cut`) waits for the next chunk."""
        if self._off_for(ctx):
            return
        if self._prefilter is None:
            raise RuntimeError("hide_secrets scanner is not running")
        found: set[str] = set()
        cap = self._chunk_chars
        for window in StreamText.of(ctx, self.name, max_hold=cap).feed(chunk):
            if not window.final:
                text = window.text
                window.hold(len(text) - stream_cut(text, self._prefilter.may_contain, cap))
            head = window.released
            if head and self._prefilter.may_contain(head):
                (clean,), types = await self.redact([head], request=False)
                if types:
                    found |= types
                    window.released = clean
        if found:
            self._reply_redacted(ctx, found)

    def _reply_redacted(self, ctx: RequestContext, types: set[str]) -> None:
        state = ctx.state_for(self.name)
        seen = set(state.get("reply_types") or ())
        state["reply_types"] = sorted(seen | types)
        if not types <= seen:  # one line per new type: a stream is not a log flood
            log.warning("Detected and redacted secrets in reply: %s", sorted(types - seen))

    async def redact(self, texts: list[str], request: bool = True) -> tuple[list[str], set[str]]:
        """Redact the texts of one request (or, `request=False`, of one reply, which the size cap
        does not concern); return them and the detector types found.

        The pre-filter runs here, on the loop (microseconds per KiB): clean text never leaves it.
        The rest is scanned in the scanner thread, in jobs of about `hide_secrets_chunk_kib`. Every
        secret found is then also redacted wherever else it occurs as a whole token in the
        request (a password quoted once and repeated bare, or echoed in an earlier assistant
        turn). Raises, never with text in the message, when the scanner fails."""
        if self._executor is None or self._engine is None or self._prefilter is None:
            raise RuntimeError("hide_secrets scanner is not running")
        from gateway_plugin_hide_secrets.engine import apply, echoes, merge
        from gateway_plugin_hide_secrets.prefilter import fold

        lows = [fold(t) for t in texts]
        dirty = [i for i, (t, low) in enumerate(zip(texts, lows, strict=True)) if self._prefilter.may_contain(t, low)]
        if not dirty:
            return texts, set()
        limit = self.config.hide_secrets_max_text_kib if request else None  # replies: `timeout_s` bounds them
        total = sum(len(texts[i]) for i in dirty)
        if limit is not None and total > limit * 1024:
            raise BadRequestError(
                f"Request text is too large to scan for secrets: {total // 1024} KiB > "
                f"hide_secrets_max_text_kib={limit}"
            )
        loop = asyncio.get_running_loop()
        jobs: list[list[tuple[int, int, int]]] = [[]]
        size = 0
        for i in dirty:
            for start, end in chunks(texts[i], self._chunk_chars):
                if size and size + (end - start) > self._chunk_chars:
                    jobs.append([])
                    size = 0
                jobs[-1].append((i, start, end))
                size += end - start
        spans: list[list[Any]] = [[] for _ in texts]
        for job in jobs:  # one job in the queue at a time: concurrent requests take turns
            try:
                found = await loop.run_in_executor(self._executor, self._scan_job, texts, lows, job)
            except Exception as exc:
                tb = "".join(traceback.format_tb(exc.__traceback__))
                log.error("hide_secrets scanner failed with %s\n%s", type(exc).__name__, tb)
                raise RuntimeError(f"secret scanner failed ({type(exc).__name__})") from None
            for i, sp in found:
                spans[i] += sp
        if not any(spans):
            return texts, set()
        spans = echoes(texts, spans)
        out: list[str] = []
        types: set[str] = set()
        for text, sp in zip(texts, spans, strict=True):
            if not sp:
                out.append(text)
                continue
            merged = merge(sp)
            for _, _, t in merged:
                types |= t
            out.append(apply(text, merged))
        return out, types

    def _scan_job(self, texts: list[str], lows: list[str],
                  job: list[tuple[int, int, int]]) -> list[tuple[int, list[Any]]]:
        """Runs in the scanner thread."""
        from gateway_plugin_hide_secrets.engine import scan_text

        return [(i, scan_text(self._engine, texts[i], start, end, lows[i])) for i, start, end in job]
