"""The format parser: declared formats, every way a line can be bad, and the fast path
giving the same answers as the general one."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tarifa.rating.formats import FormatError, LineParser, builtin, iter_lines, validate_spec

MEASURES = {"voice": "time", "data": "bytes", "sms": "count"}
HEADER = b"record_id,source,subject,destination,type,start_time,usage"


def parser(spec=None):
    p = LineParser(spec or builtin()["csv"], measures=MEASURES)
    if p.needs_header:
        p.feed_header(HEADER)
    return p


def test_csv_line():
    row = parser().parse(2, b"c1,sw1,+15550001,4420,voice,2024-03-05T10:00:00Z,45")
    assert row == (2, "sw1", "c1", "+15550001", "4420", "voice", "2024-03-05T10:00:00+00:00", 45 * 10**9, "", "",
                   "c1,sw1,+15550001,4420,voice,2024-03-05T10:00:00Z,45")  # the raw line: kept if rejected later


@pytest.mark.parametrize("line,reason,message", [
    (b"c1,sw1,+1555,4420,voice,2024-03-05T10:00:00Z", "malformed", "expected 7 columns, found 6"),
    (b"c1,sw1,+1555,4420,voice,soon,45", "malformed", "cannot read the start time 'soon'"),
    (b"c1,sw1,+1555,4420,voice,2024-03-05T10:00:00Z,-4", "negative_usage", "negative usage '-4'"),
    (b"c1,sw1,+1555,4420,voice,2024-03-05T10:00:00Z,lots", "malformed", "cannot read the usage 'lots'"),
    (b"c1,sw1,+1555,4420,fax,2024-03-05T10:00:00Z,4", "unknown_usage_type", "unknown usage type 'fax'"),
    (b"c1,sw1,,4420,voice,2024-03-05T10:00:00Z,4", "malformed", "the subject is empty"),
    (b",sw1,+1555,4420,voice,2024-03-05T10:00:00Z,4", "malformed", "the record id is empty"),
    (b'c1,"sw1,+1555,4420,voice,2024-03-05T10:00:00Z,4', "malformed", "bad CSV quoting"),
    (b"c1,sw1,+15\xff55,4420,voice,2024-03-05T10:00:00Z,4", "malformed", "not valid utf-8 text (byte 11"),
])
def test_bad_lines_have_reasons(line, reason, message):
    row = parser().parse(9, line)
    assert row[8] == reason and row[9].startswith(message), row
    assert row[2]  # every rejected line has a key: its id, or the hash of its bytes


def test_data_units_and_durations():
    p = parser()
    assert p.parse(1, b"d1,s,x,,data,2024-03-05T10:00:00Z,10MB")[7] == 10 * 10**6
    assert p.parse(1, b"d1,s,x,,data,2024-03-05T10:00:00Z,1.5KiB")[7] == 1536
    assert p.parse(1, b"v1,s,x,1,voice,2024-03-05T10:00:00Z,1m30s")[7] == 90 * 10**9
    assert p.parse(1, b"v1,s,x,1,voice,2024-03-05T10:00:00Z,2.5")[7] == 2500 * 10**6
    assert p.parse(1, b"v1,s,x,1,voice,2024-03-05 12:00:00,5")[6] == "2024-03-05T12:00:00+00:00"


def test_quoted_fields():
    row = parser().parse(1, b'q1,sw1,"+1555",4420,voice,2024-03-05T10:00:00Z,"45"')
    assert row[3] == "+1555" and row[7] == 45 * 10**9


def test_specs_are_checked():
    with pytest.raises(FormatError, match="unknown keys"):
        validate_spec({"columns": {"record_id": 0}, "colour": 1})
    with pytest.raises(FormatError, match="needs a column"):
        validate_spec({"columns": {"record_id": 0, "usage": 1}})
    with pytest.raises(FormatError, match="need header"):
        validate_spec({"columns": {"record_id": "id", "subject": 1, "start_time": 2, "usage": 3}})
    with pytest.raises(FormatError, match="time_zone"):
        validate_spec({"columns": {"record_id": 0, "subject": 1, "start_time": 2, "usage": 3}, "time_zone": "Mars"})
    for spec in builtin().values():
        validate_spec({k: v for k, v in spec.items()})


def test_iter_lines_streams_in_chunks_and_ranges():
    data = b"".join(b"line %d\r\n" % i for i in range(1, 50_001)) + b"last"
    lines = list(iter_lines(io.BytesIO(data)))
    assert len(lines) == 50_001 and lines[0] == (1, b"line 1") and lines[-1] == (50_001, b"last")
    part = list(iter_lines(io.BytesIO(data[8:]), first_line=2, limit=16))
    assert part == [(2, b"line 2"), (3, b"line 3")]


class Reader(io.RawIOBase):
    """A stream that refuses big reads: the import must never read a file whole."""

    def __init__(self, lines: int):
        self.left = lines
        self.reads = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        self.reads += 1
        assert len(buffer) <= 1 << 20
        out = b""
        while self.left and len(out) < len(buffer) - 80:
            out += b"r%d,s,+1555,1,voice,2024-03-05T10:00:00Z,5\n" % self.left
            self.left -= 1
        buffer[:len(out)] = out
        return len(out)


def test_bounded_reads():
    stream = io.BufferedReader(Reader(100_000), buffer_size=1 << 16)
    assert sum(1 for _ in iter_lines(stream)) == 100_000


LINES = st.lists(st.sampled_from([
    "c1", "sw1", "", "+15550001", "4420", "voice", "data", "sms", "fax", "2024-03-05T10:00:00Z", "2024-03-05 10:00",
    "never", "45", "-3", "1m30s", "10MB", "1.5", '"q"', " 7 ", "\t"]), min_size=5, max_size=9)


@settings(max_examples=300, deadline=None)
@given(LINES)
def test_fast_path_answers_like_the_general_parser(values):
    p = parser()
    raw = ",".join(values).encode()
    assert p.parse(3, raw, "dflt") == p._parse_slow(3, raw, "dflt")
