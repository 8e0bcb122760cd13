"""Receipts are hashed and signed over RFC 8785 (JCS) canonical JSON: the examples of the RFC
itself, through the client's `canonical` and the platform's (the same bytes both sides)."""

import json
import struct

import pytest

from genline_client.receipts import canonical
from services.ingest.receipts.document import canonical as platform_canonical

# RFC 8785, section 3.2.2: the example input, as JSON text, and its canonical form.
EXAMPLE_INPUT = r'''{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}'''
EXAMPLE_OUTPUT = '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' \
                 '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'

# Section 3.2.3: properties sorted by their names' UTF-16 code units.
SORTING_INPUT = r'''{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}'''
SORTED_NAMES = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]

# Appendix B: IEEE 754 doubles (as hex) and how JCS writes them.
NUMBERS = {
    "0000000000000000": "0", "8000000000000000": "0", "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324", "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308", "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992", "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22", "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23", "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000", "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7", "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332", "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333", "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343", "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


@pytest.mark.parametrize("serialise", [canonical, platform_canonical], ids=["client", "platform"])
def test_the_rfc_s_example_serialises_as_the_rfc_says(serialise):
    assert serialise(json.loads(EXAMPLE_INPUT)) == EXAMPLE_OUTPUT.encode()


@pytest.mark.parametrize("serialise", [canonical, platform_canonical], ids=["client", "platform"])
def test_properties_are_sorted_by_utf16_code_units(serialise):
    text = serialise(json.loads(SORTING_INPUT)).decode()
    assert list(json.loads(text)) == SORTED_NAMES
    assert text.startswith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')


@pytest.mark.parametrize(("bits", "written"), NUMBERS.items())
def test_numbers_are_written_as_ecmascript_writes_them(bits, written):
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical(value) == platform_canonical(value) == written.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000"])
def test_nan_and_infinity_have_no_canonical_form(bits):
    with pytest.raises(ValueError):  # rfc8785.FloatDomainError
        canonical(struct.unpack(">d", bytes.fromhex(bits))[0])
