"""Signature verification against fixed vectors (computed independently with openssl's HMAC-SHA256)."""
from roomc.runtime.signatures import sign, verify

SECRET = b"whsec_roomc_test"
BODY = b'{"kind":"call.answered","event_id":"01HX"}'
# printf '%s' '{"kind":"call.answered","event_id":"01HX"}.1700000000' | openssl dgst -sha256 -hmac whsec_roomc_test
TIMESTAMPED = "t=1700000000,v1=7d7be4bfa8ed9b5d243e27e2fa86a42e9f27e9cccb02cb9c17911e05c8d56808"
# printf '%s' '{"kind":"call.answered","event_id":"01HX"}' | openssl dgst -sha256 -hmac whsec_roomc_test
BARE = "c28d777889033e35ceb89bae2927b259a6d4ff9e6e0bd795bfdd9f1b3f01aaca"


def test_sign_matches_the_published_scheme():
    assert sign(SECRET, BODY, timestamp=1700000000) == TIMESTAMPED


def test_timestamped_vector_verifies_inside_the_window():
    assert verify(SECRET, TIMESTAMPED, BODY, now=1700000000 + 299) is None
    assert verify(SECRET, TIMESTAMPED, BODY, now=1700000000 + 301) == "timestamp outside the replay window"
    assert verify(SECRET, TIMESTAMPED, BODY + b" ", now=1700000000) == "signature does not match"
    assert verify(b"other", TIMESTAMPED, BODY, now=1700000000) == "signature does not match"


def test_rotation_with_two_v1_values():
    header = TIMESTAMPED.replace("t=1700000000,", "t=1700000000,v1=" + "0" * 64 + ",")
    assert verify(SECRET, header, BODY, now=1700000000) is None


def test_malformed_headers():
    assert verify(SECRET, None, BODY) == "missing X-Sautikit-Signature"
    assert verify(SECRET, "t=abc,v1=00", BODY) == "malformed timestamp"
    assert verify(SECRET, "v1=00", BODY) == "malformed signature header"
    assert verify(SECRET, "t=1,t=2,v1=00", BODY) == "malformed signature header"


def test_bare_hex_form():
    bare = BARE
    assert verify(SECRET, bare, BODY) is None
    assert verify(SECRET, bare.upper(), BODY) is None
    assert verify(SECRET, bare, BODY + b"x") == "bare signature does not match"
