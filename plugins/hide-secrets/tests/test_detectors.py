"""The scanner on its own (no gateway): one sample per detector, whole-token widening, the
pre-filter's conditions, chunking. The engine is built and used in this one test thread.

Secret-looking samples are assembled from pieces at run time (`"gh" + "p_"`), so that no secret
scanner (a push protection, a pre-commit hook) mistakes this file for a leak.
"""

from __future__ import annotations

import base64
import json
import random
import string

import pytest
from gateway_plugin_hide_secrets.engine import Engine, apply, merge, scan_text
from gateway_plugin_hide_secrets.handler import chunks
from gateway_plugin_hide_secrets.prefilter import TRIGGERS, Prefilter, fold

R = "[REDACTED]"
rng = random.Random(7)


def rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
JWT = (b64url({"alg": "HS256", "typ": "JWT"}) + "." + b64url({"sub": "1234567890", "iat": 1516239022})
       + "." + rand(43, string.ascii_letters + string.digits + "-_"))
PEM_BODY = "\n".join(rand(64, string.ascii_letters + string.digits + "+/") for _ in range(4))


def pem(kind: str) -> str:
    return f"-----{'BEGIN'} {kind}-----\n{PEM_BODY}\n-----{'END'} {kind}-----"


#: detector class name -> [(text, expected)]: every built-in detector and this plugin's additions.
SAMPLES: dict[str, list[tuple[str, str]]] = {
    "AWSKeyDetector": [
        ("key id " + "AKIA" + "Z7Q2M4N6P8R1T3V5 ok", f"key id {R} ok"),
        ('aws_token = "' + rand(40) + '"', f'aws_token = "{R}"'),
    ],
    "ArtifactoryDetector": [("artifactory " + "AKC" + rand(60) + " end", f"artifactory {R} end"),
                            ("pw=" + "AP6" + rand(20) + " end", f"pw={R} end")],
    "AzureStorageKeyDetector": [("DefaultEndpointsProtocol=https;" + "Account" + "Key=" + rand(86) + "==",
                                 f"DefaultEndpointsProtocol=https;AccountKey={R}")],
    "Base64HighEntropyString": [('{"token": "' + rand(40) + '"}', '{"token": "' + R + '"}')],
    "BasicAuthDetector": [("clone https://alice:" + "Pa55-w0rd" + "@git.example.com/repo.git",
                           f"clone https://alice:{R}@git.example.com/repo.git")],
    "CloudantDetector": [("cloudant_password = '" + rand(64, HEX) + "'", f"cloudant_password = '{R}'")],
    "DiscordBotTokenDetector": [("bot token " + "M" + rand(23) + "." + rand(6) + "." + rand(27), f"bot token {R}")],
    "GitHubTokenDetector": [("token " + "gh" + "p_" + rand(36) + ", thanks", f"token {R}, thanks"),
                            ("gh" + "s_" + rand(36), R)],
    "GitHubFineGrainedTokenDetector": [("use " + "github" + "_pat_" + rand(22) + "_" + rand(59) + ".", f"use {R}.")],
    "GitLabTokenDetector": [("gl" + "pat-" + rand(20) + " is mine", f"{R} is mine")],
    "HexHighEntropyString": [("checksum: '" + rand(40, HEX) + "'", f"checksum: '{R}'")],
    "IbmCloudIamDetector": [("ibm_cloud_iam_api_key = '" + rand(44) + "'", f"ibm_cloud_iam_api_key = '{R}'")],
    "IbmCosHmacDetector": [("cos_hmac_secret_access_key = '" + rand(48, HEX) + "'",
                            f"cos_hmac_secret_access_key = '{R}'")],
    "JwtTokenDetector": [("Authorization: Bearer " + JWT + ".", f"Authorization: Bearer {R}.")],
    "KeywordDetector": [("API_KEY = 'sk_1234567890abcdef'", f"API_KEY = '{R}'"),
                        ("openai_api_key=sk-1234998222", f"openai_api_key={R}")],
    "MailchimpDetector": [("mailchimp " + rand(32, LOWER_ALNUM) + "-us12 ok", f"mailchimp {R} ok")],
    "NpmDetector": [("//registry.npmjs.org/:_auth" + "Token=npm_" + rand(36), f"//registry.npmjs.org/:_authToken={R}")],
    "OpenAIDetector": [("sk-" + rand(20) + "T3Blbk" + "FJ" + rand(20) + " is my key", f"{R} is my key")],
    "PrivateKeyDetector": [(f"here:\n{pem('RSA PRIVATE KEY')}\nthanks", f"here:\n{R}\nthanks"),
                           (f"{pem('OPENSSH PRIVATE KEY')}", R),
                           (f"{pem('EC PRIVATE KEY')}", R),
                           (f"{pem('PRIVATE KEY')}", R)],
    "EncryptedPrivateKeyDetector": [(f"a\n{pem('ENCRYPTED PRIVATE KEY')}\nb", f"a\n{R}\nb")],
    "PypiTokenDetector": [("pypi-" + "AgEIcHlwaS5vcmc" + rand(80), R)],
    "SendGridDetector": [("SG." + rand(22) + "." + rand(43), R)],
    "SlackDetector": [("xox" + "b-123456789012-1234567890123-" + rand(24), R),
                      ("https://hooks.slack.com/services/" + "T" + rand(10) + "/B" + rand(10) + "/" + rand(24), R)],
    "SoftlayerDetector": [("softlayer_api_key = '" + rand(64, LOWER_ALNUM) + "'", f"softlayer_api_key = '{R}'")],
    "SquareOAuthDetector": [("sq0" + "csp-" + rand(43), R)],
    "StripeDetector": [("charge with " + "sk" + "_live_" + rand(24), f"charge with {R}"),
                       ("rk" + "_live_" + rand(99), R)],
    "TelegramBotTokenDetector": [("bot " + "123456789:" + rand(35), f"bot {R}")],
    "TwilioKeyDetector": [("twilio " + "AC" + rand(32, LOWER_ALNUM), f"twilio {R}"),
                          ("SK" + rand(32, LOWER_ALNUM), R)],
}

CLEAN = [
    "Could you help me write a polite email to my landlord about the broken heating?",
    "What's the best way to store a password securely? The secret is a slow hash; never log an API key.",
    'def load():\n    password = os.environ.get("DB_PASSWORD")\n    if password == confirm_password:\n'
    '        print("match")\n    api_key = get_api_key()\n    secret = settings.secret\n',
    "const apiKey = process.env.API_KEY;\npassword=swordfish\napi_key=YOUR_API_KEY\npassword: hunter",
    "Order 123e4567-e89b-12d3-a456-426614174000, {\"id\": \"550e8400-e29b-41d4-a716-446655440000\"}",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b, "
    "digest sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "2024-05-01T12:34:56Z, unix 1714566896, +1 (415) 555-2671, v1.0.0-beta.2+build.5, Python 3.11.7",
    "See https://example.com/a?b=1#c, mail alice@example.org, ssh git@github.com:org/repo.git, 8.8.8.8",
    "Asia, accounts, ACME, SKU, through, glass, sleep, client, API key, the key, a pass, a token",
]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def redact(engine: Engine, text: str) -> tuple[str, set[str]]:
    merged = merge(scan_text(engine, text, 0, len(text)))
    return apply(text, merged), set().union(*(t for _, _, t in merged))


def redact_without_prefilter(engine: Engine, text: str) -> str:
    """Every detector on every line: what the pre-filter must never change."""
    low = fold(text)
    spans = []
    pos = 0
    for line in text.split("\n"):
        spans += engine.scan_line(text, low, pos, pos + len(line))
        pos += len(line) + 1
    return apply(text, merge(spans))


CASES = [(name, text, expected) for name, items in SAMPLES.items() for text, expected in items]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_detector_redacts_its_whole_secret(engine, name, text, expected):
    assert redact(engine, text)[0] == expected
    assert redact_without_prefilter(engine, text) == expected
    assert engine.prefilter.may_contain(text)


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_detector_fires_on_its_sample_by_itself(name, text, expected):
    """The sample is this detector's (not only caught by another), and its own pre-filter
    conditions hold on it."""
    alone = Engine(disabled=[n for n in SAMPLES if n != name])
    assert alone.enabled == [name]
    assert redact(alone, text)[0] == expected
    assert alone.prefilter.may_contain(text)


def test_every_enabled_detector_has_samples_and_conditions(engine):
    assert sorted(engine.enabled) == sorted(SAMPLES)
    assert engine.prefilter.complete
    assert set(TRIGGERS) <= set(SAMPLES)


@pytest.mark.parametrize("text", CLEAN)
def test_clean_text_stays_exactly(engine, text):
    assert redact(engine, text) == (text, set())
    assert redact_without_prefilter(engine, text) == text


def test_types_are_detect_secrets_names(engine):
    assert redact(engine, "API_KEY = 'sk_1234567890abcdef'")[1] == {"Secret Keyword"}
    assert redact(engine, "x " + "gh" + "p_" + rand(36))[1] == {"GitHub Token"}


def test_keyword_rules():
    engine = Engine()
    cases = {
        'password = "correct horse battery staple"': f'password = "{R}"',
        "db_password: 'Tr0ub4dor&3' # prod": f"db_password: '{R}' # prod",
        "secret=abc123, next=1": f"secret={R}, next=1",
        "password: Hunter2! then more words": f"password: {R} then more words",
        'user_id = 5; password = "Tr0ub4dor3x"': f'user_id = 5; password = "{R}"',
        "password=hunter2 and api_key=xyz789": f"password={R} and api_key={R}",
        "secret_key = get_secret_key()": "secret_key = get_secret_key()",
        "password = ${DB_PASSWORD}": "password = ${DB_PASSWORD}",
        'password = "{{ vault_password }}"': 'password = "{{ vault_password }}"',
        'password = "********"': 'password = "********"',
    }
    for text, expected in cases.items():
        assert redact(engine, text)[0] == expected, text
    quoted_only = Engine(unquoted_keywords=False)
    assert redact(quoted_only, "openai_api_key=sk-1234998222")[0] == "openai_api_key=sk-1234998222"
    assert redact(quoted_only, "API_KEY = 'sk_1234567890abcdef'")[0] == f"API_KEY = '{R}'"


def test_private_key_without_end_line_is_redacted_to_the_end_of_its_body(engine):
    text = "my key:\n-----" + "BEGIN RSA PRIVATE KEY-----\n" + PEM_BODY + "\n\nwhat is wrong with it?"
    assert redact(engine, text)[0] == f"my key:\n{R}\n\nwhat is wrong with it?"


def test_pem_with_escaped_newlines_on_one_line(engine):
    block = pem("PRIVATE KEY").replace("\n", "\\n")
    text = '{"type": "service_account", "private_key": "' + block + '\\n", "client_email": "a@b.iam"}'
    want = '{"type": "service_account", "private_key": "' + R + '\\n", "client_email": "a@b.iam"}'
    assert redact(engine, text)[0] == want


def test_redaction_is_idempotent(engine):
    for _, _, expected in CASES:
        assert redact(engine, expected)[0] == expected


def test_disabling_detectors_by_class_or_type_name():
    engine = Engine(disabled=["KeywordDetector", "github token"])
    assert "KeywordDetector" not in engine.enabled
    assert "GitHubTokenDetector" not in engine.enabled and "GitHubFineGrainedTokenDetector" not in engine.enabled
    assert redact(engine, "API_KEY = 'sk_1234567890abcdef'")[0] == "API_KEY = 'sk_1234567890abcdef'"
    with pytest.raises(ValueError, match="unknown detector 'NoSuchDetector'; known: AWSKeyDetector"):
        Engine(disabled=["NoSuchDetector"])


def test_chunks_cut_at_lines_then_whitespace_never_inside_a_token():
    text = "a" * 10 + "\n" + "b c d e f g h i j k l m n o p " + "T" * 50 + " end"
    pieces = list(chunks(text, 8))
    assert "".join(text[s:e] for s, e in pieces) == text
    assert all(e > s for s, e in pieces)
    assert ("T" * 50) in [text[s:e].strip() for s, e in pieces]
    for s, e in pieces[:-1]:
        assert text[e - 1].isspace() or text[e] == "\n" or text[s:e].strip() == "a" * 10


def test_scanning_in_chunks_finds_what_a_whole_scan_finds(engine):
    lines = []
    expected = []
    for i in range(400):
        name, text, want = CASES[i % len(CASES)]
        if i % 3:
            lines.append(f"line {i}: the weather is fine and nothing here is secret-looking at all.")
            expected.append(lines[-1])
        else:
            lines.append(text)
            expected.append(want)
    text = "\n".join(lines)
    low = fold(text)
    spans = []
    for s, e in chunks(text, 1024):
        spans += scan_text(engine, text, s, e, low)
    assert apply(text, merge(spans)) == "\n".join(expected)


def test_a_detector_without_conditions_turns_the_prefilter_off():
    """A detector this plugin has no conditions for (a newer detect-secrets) runs everywhere."""
    pf = Prefilter([[(("eyJ",), None, False)], None])
    assert not pf.complete
    assert pf.may_contain("plain words")
    text = "one\ntwo eyJ\n\nthree"
    assert pf.lines(text, fold(text), 0, len(text)) == {(0, 3): {1}, (4, 11): {0, 1}, (13, 18): {1}}
    complete = Prefilter([[(("eyJ",), None, False)]])
    assert complete.complete and not complete.may_contain("plain words") and complete.may_contain("x eyJ")


def test_folded_conditions_must_be_lower_case():
    with pytest.raises(ValueError, match="must be lower-case"):
        Prefilter([[(("AKIA",), None, True)]])
