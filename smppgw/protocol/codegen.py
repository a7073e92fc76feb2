"""Straight-line encode/decode source for each PDU class, generated from its ``FIELDS``.

``codec.py`` explains why (measured numbers); this module only writes and compiles the
source. For each PDU class it writes one small module of these functions:

- ``decode_<name>(data, end, status, seq)``: the body from offset 16, after
  ``decode_pdu`` read and checked the header (``end == len(data)``). One block per
  field, with every check and error message of the table-driven decoder it replaced,
  in the same order. For the bodies without destination lists, that function is
  ``decode_<name>_checked`` and ``decode_<name>`` first tries one regular expression
  (``_PATTERN``, generated beside it, one commented line per field) over all the
  mandatory fields; anything it does not match goes to the checked one, which finds
  and names the fault.
- ``encode_<name>_checked(pdu, seq)``: the reference encoder, one block per field, every
  check in table order. It decides what is an error and which status it gets.
- ``encode_<name>(pdu, seq)``: the fast encoder. It screens the values with one
  condition and one ``bytes()`` call, then formats the body with a single ``%``; any
  doubt (a screen fails, an exception) hands the PDU to ``encode_<name>_checked``, so
  errors, their statuses and messages are the reference encoder's by construction. The
  screen only has to be *at least* as strict as the reference (never accept what it
  refuses, and produce the same octets when it accepts).
- ``with_sequence_number_<name>(pdu, seq)``: a copy with another sequence number.
- ``__init__``: the dataclass ``__init__``'s signature and defaults, setting the slots
  through their descriptors (installed on the class by ``codec.py``).

The generated code calls helpers by name (``_BodyError``, ``_cstring_fault``, ...):
``codec.py`` supplies them in the namespace given to :func:`compile_pdu_functions`
(checked against :data:`HELPERS`). Each class's functions live in their own namespace,
where ``_set_<slot>`` is that slot's descriptor ``__set__``, the class is bound by its
own name and the statuses by theirs (``ESME_RINVSRCADR``).

Reading it: ``generated_source(SubmitSm)`` (in ``codec.py``) returns the text; it is
registered with :mod:`linecache` under ``<smppgw.codegen SubmitSm>``, so tracebacks and
``pdb`` show the generated lines.
"""

from __future__ import annotations

import dataclasses
import linecache
from typing import TYPE_CHECKING, Any

from smppgw.protocol.commands import CommandId
from smppgw.protocol.fields import Field, FieldKind
from smppgw.protocol.status import CommandStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from smppgw.protocol.pdus import Pdu

__all__ = ["HELPERS", "CompiledPdu", "compile_pdu_functions", "pdu_source"]

#: What the generated code expects to find in the namespace the codec supplies.
HELPERS = frozenset(
    {
        "_BodyError",
        "_ENCODE_ERRORS",
        "_HEADER_pack",
        "_cstring_fault",
        "_decode_dest_list",
        "_decode_tlvs",
        "_decode_unsuccess_list",
        "_encode_dest_list",
        "_encode_tlvs",
        "_encode_unsuccess_list",
        "_new",
        "_re_compile",
        "_u8_fault",
        "_u8_octet",
    }
)

_HEADER_SLOTS = ("sequence_number", "command_status", "tlvs")
_CSTRING = FieldKind.CSTRING
_TIME = FieldKind.TIME
_U8 = FieldKind.U8
_SHORT_MESSAGE = FieldKind.SHORT_MESSAGE
_DEST_LIST = FieldKind.DEST_LIST


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledPdu:
    """The compiled functions of one PDU class and the source they came from."""

    source: str
    filename: str
    decode: Callable[[bytes, int, int, int], Pdu]
    decode_checked: Callable[[bytes, int, int, int], Pdu]
    encode: Callable[[Pdu, int], bytes]
    encode_checked: Callable[[Pdu, int], bytes]
    with_sequence_number: Callable[[Pdu, int], Pdu]
    init: Callable[..., None]


def _pdu_name(cls: type[Pdu]) -> str:
    return CommandId(cls.command_id).name.lower()


_TIME_RULE = "must be empty or 16 characters"


def _hex(cls: type[Pdu]) -> str:
    return f"0x{cls.command_id:08X}"


def _status(status: int) -> str:
    return CommandStatus(status).name


def _literal(value: object) -> str:
    """Source for a field default; only plain literals occur in the PDU classes."""
    if type(value) not in (int, str, bytes, tuple) or (type(value) is tuple and value):
        raise TypeError(f"default {value!r} is not a plain literal")
    return repr(value)


def _u8_runs(fields: tuple[Field, ...]) -> list[list[Field] | Field]:
    """The fields with consecutive ``U8`` ones grouped (one bounds check per group)."""
    out: list[list[Field] | Field] = []
    for f in fields:
        if f.kind is _U8 and out and isinstance(out[-1], list):
            out[-1].append(f)
        elif f.kind is _U8:
            out.append([f])
        else:
            out.append(f)
    return out


# -- decoding ------------------------------------------------------------------------


def _checked_decoder(cls: type[Pdu], name: str, entry: str) -> list[str]:
    response = bool(cls.command_id & 0x80000000)
    fields = cls.FIELDS
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    lines = [
        f"def {entry}(data, end, status, seq):",
        f'    """The body of a {name} from offset 16 (``end == len(data)``), each field',
        '    checked in table order: every error is found and named here."""',
        f"    pdu = _new({cls.__name__})",
        "    _set_sequence_number(pdu, seq)",
        "    _set_command_status(pdu, status)",
    ]
    if any(f.kind in (_CSTRING, _TIME) for f in fields):
        lines += [
            "    # latin-1 maps octet i to character i: C-strings are sliced from one str",
            '    text = data.decode("latin-1")',
            "    find = text.find",
        ]
    lines.append("    pos = 16")
    # A response may stop after any whole field (an error response without its body):
    # the grouping of U8 fields would hide those stops, so responses go field by field.
    units = [[f] if f.kind is _U8 else f for f in fields] if response else _u8_runs(fields)
    done = 0
    for unit in units:
        if response:
            lines.append("    if pos >= end:  # a response may stop here: the rest keep defaults")
            for f in fields[done:]:
                lines.append(f"        _set_{f.name}(pdu, {_literal(defaults[f.name])})")
            lines += ["        _set_tlvs(pdu, ())", "        return pdu"]
        if isinstance(unit, list):
            names = tuple(f.name for f in unit)
            n = len(unit)
            lines.append(f"    # {', '.join(names)}: 1 octet{' each' if n > 1 else ''}")
            if not response:  # for a response, "pos < end" was just checked
                lines += [
                    f"    if pos + {n} > end:",
                    f"        raise _u8_fault({names!r}, pos, end)",
                ]
            for i, f in enumerate(unit):
                lines.append(f"    _set_{f.name}(pdu, data[pos{f' + {i}' if i else ''}])")
            lines.append(f"    pos += {n}")
            done += n
            continue
        f = unit
        done += 1
        status = _status(f.status)
        if f.kind in (_CSTRING, _TIME):
            what = "TIME: empty or 16 characters" if f.kind is _TIME else "C-octet string"
            lines += [
                f"    # {f.name}: {what}, at most {f.limit} octets with the NUL",
                '    nul = find("\\0", pos)',
                f"    if nul < 0 or nul - pos >= {f.limit}:",
                f"        raise _cstring_fault({f.name!r}, {f.limit}, {status}, nul, pos, end)",
            ]
            if f.kind is _TIME:
                lines += [
                    "    if nul != pos and nul - pos != 16:",
                    f'        raise _BodyError("{f.name}: {_TIME_RULE}", {status})',
                ]
            lines += [f"    _set_{f.name}(pdu, text[pos:nul])", "    pos = nul + 1"]
        elif f.kind is _SHORT_MESSAGE:
            lines += [
                f"    # sm_length (1 octet, at most {f.limit}), then {f.name}",
                "    if pos >= end:",
                '        raise _BodyError("sm_length: PDU ends before it", ESME_RINVCMDLEN)',
                "    sm_length = data[pos]",
                f"    if sm_length > {f.limit}:",
                f'        raise _BodyError(f"sm_length {{sm_length}} over {f.limit}", {status})',
                "    pos += 1",
                "    if pos + sm_length > end:",
                '        raise _BodyError("short_message runs past the PDU", ESME_RINVMSGLEN)',
                f"    _set_{f.name}(pdu, data[pos : pos + sm_length])",
                "    pos += sm_length",
            ]
        elif f.kind is _DEST_LIST:
            lines += [
                f"    # {f.name}: number_of_dests (1..{f.limit}) then dest_address entries",
                f"    value, pos = _decode_dest_list({f.limit}, {status}, data, pos, end)",
                f"    _set_{f.name}(pdu, value)",
            ]
        else:
            lines += [
                f"    # {f.name}: no_unsuccess then unsuccess_sme entries",
                "    value, pos = _decode_unsuccess_list(data, pos, end)",
                f"    _set_{f.name}(pdu, value)",
            ]
    lines += [
        "    # optional parameters (TLVs) to the end of the PDU",
        "    _set_tlvs(pdu, _decode_tlvs(data, pos, end) if pos < end else ())",
        "    return pdu",
    ]
    return lines


def _pattern_fields(cls: type[Pdu]) -> bool:
    """Whether ``cls`` gets a pattern-screened decoder: its body is only C-strings, TIME
    and octets, maybe ending with ``short_message`` (not the destination lists).
    Measured, the pattern is faster from one C-string on (~10% for ``submit_sm_resp``,
    ~20% for ``submit_sm`` and the binds)."""
    fields = cls.FIELDS
    if fields and fields[-1].kind is _SHORT_MESSAGE:
        fields = fields[:-1]
    return bool(fields) and all(f.kind in (_CSTRING, _TIME, _U8) for f in fields)


def _screened_decoder(cls: type[Pdu], name: str) -> list[str]:
    """One regular expression over the latin-1 text matches every mandatory field (and
    ``sm_length``) at once; the values come out of its groups. Whatever it does not
    match, the checked decoder reads field by field, and finds the fault. The pattern
    accepts exactly what the checked decoder accepts: ``[^\\0]{0,N}\\0`` is a C-string
    of at most N characters, ``(|[^\\0]{16})\\0`` a TIME, ``(.)`` an octet."""
    fields = cls.FIELDS
    sm = fields[-1] if fields and fields[-1].kind is _SHORT_MESSAGE else None
    simple = fields[:-1] if sm is not None else fields
    lines = ["_PATTERN = _re_compile(", '    "(?s)"  # "." is any octet, NUL included']
    for f in simple:
        if f.kind is _CSTRING:
            lines.append(f'    "([^\\0]{{0,{f.limit - 1}}})\\0"  # {f.name}')
        elif f.kind is _TIME:
            lines.append(f'    "(|[^\\0]{{16}})\\0"  # {f.name}')
        else:
            lines.append(f'    "(.)"  # {f.name}')
    if sm is not None:
        lines.append('    "(.)"  # sm_length')
    lines += [")", "", ""]
    groups = [f.name for f in simple] + (["sm_length"] if sm is not None else [])
    fallback = f"decode_{name}_checked(data, end, status, seq)"
    lines += [
        f"def decode_{name}(data, end, status, seq):",
        f'    """The body of a {name} from offset 16 (``end == len(data)``): the mandatory',
        f'    fields in one match of _PATTERN, else decode_{name}_checked."""',
        '    match = _PATTERN.match(data.decode("latin-1"), 16)',
        "    if match is None:",
        f"        return {fallback}",
        "    (",
    ]
    lines += [f"        {g}," for g in groups]
    lines += ["    ) = match.groups()", "    pos = match.end()"]
    if sm is not None:
        lines += [
            "    sm_length = ord(sm_length)",
            f"    if sm_length > {sm.limit} or pos + sm_length > end:",
            f"        return {fallback}",
        ]
    lines += [
        f"    pdu = _new({cls.__name__})",
        "    _set_sequence_number(pdu, seq)",
        "    _set_command_status(pdu, status)",
    ]
    for f in simple:
        value = f"ord({f.name})" if f.kind is _U8 else f.name
        lines.append(f"    _set_{f.name}(pdu, {value})")
    if sm is not None:
        lines += [
            f"    _set_{sm.name}(pdu, data[pos : pos + sm_length])",
            "    pos += sm_length",
        ]
    lines += [
        "    _set_tlvs(pdu, _decode_tlvs(data, pos, end) if pos < end else ())",
        "    return pdu",
    ]
    return lines


def _decoders(cls: type[Pdu], name: str) -> list[list[str]]:
    if _pattern_fields(cls):
        return [_screened_decoder(cls, name), _checked_decoder(cls, name, f"decode_{name}_checked")]
    return [_checked_decoder(cls, name, f"decode_{name}")]


# -- encoding ------------------------------------------------------------------------


def _checked_encoder(cls: type[Pdu], name: str) -> list[str]:
    lines = [
        f"def encode_{name}_checked(pdu, seq):",
        f'    """The reference {name} encoder: each field checked in table order."""',
        "    parts = []",
        "    append = parts.append",
    ]
    for f in cls.FIELDS:
        status = _status(f.status)
        value = f"pdu.{f.name}"
        if f.kind in (_CSTRING, _TIME):
            lines += [
                f'    raw = {value}.encode("latin-1")',
                f"    if len(raw) >= {f.limit}:",
                f'        raise _BodyError("{f.name}: longer than {f.limit - 1}", {status})',
                '    if b"\\0" in raw:',
                f'        raise _BodyError("{f.name}: contains NUL", {status})',
            ]
            if f.kind is _TIME:
                lines += [
                    "    if raw and len(raw) != 16:",
                    f'        raise _BodyError("{f.name}: {_TIME_RULE}", {status})',
                ]
            lines += ["    append(raw)", '    append(b"\\0")']
        elif f.kind is _U8:
            lines.append(f"    append(_u8_octet({f.name!r}, {value}, {status}))")
        elif f.kind is _SHORT_MESSAGE:
            lines += [
                f"    value = {value}",
                f"    if len(value) > {f.limit}:",
                "        raise _BodyError(",
                f'            f"short_message of {{len(value)}} octets over {f.limit}", {status}',
                "        )",
                "    append(bytes((len(value),)))",
                "    append(bytes(value))",
            ]
        elif f.kind is _DEST_LIST:
            lines.append(f"    append(_encode_dest_list({f.limit}, {status}, {value}))")
        else:
            lines.append(f"    append(_encode_unsuccess_list({f.limit}, {status}, {value}))")
    lines += [
        "    append(_encode_tlvs(pdu.tlvs))",
        '    body = b"".join(parts)',
        f"    header = _HEADER_pack(16 + len(body), {_hex(cls)}, pdu.command_status, seq)",
        "    return header + body",
    ]
    return lines


def _fast_encoder(cls: type[Pdu], name: str) -> list[str]:
    fields = cls.FIELDS
    lines = [
        f"def encode_{name}(pdu, seq):",
        f'    """{name} to octets; any doubt goes to ``encode_{name}_checked``."""',
    ]
    lines += [f"    {f.name} = pdu.{f.name}" for f in fields]
    lines.append("    try:")
    screen: list[str] = []
    octets: list[str] = []
    template = ""
    args: list[str] = []
    for f in fields:
        if f.kind is _CSTRING:
            screen.append(f'len({f.name}) >= {f.limit} or "\\0" in {f.name}')
            template += "%b\\0"
            args.append(f'{f.name}.encode("latin-1")')
        elif f.kind is _TIME:
            screen.append(f'({f.name} and (len({f.name}) != 16 or "\\0" in {f.name}))')
            template += "%b\\0"
            args.append(f'{f.name}.encode("latin-1")')
        elif f.kind is _U8:
            octets.append(f.name)
            template += "%c"
            args.append(f.name)
        elif f.kind is _SHORT_MESSAGE:
            screen.append(f"len({f.name}) > {f.limit}")
            template += "%c%b"
            args += [f"len({f.name})", f.name]
        elif f.kind is _DEST_LIST:
            template += "%b"
            args.append(f"_encode_dest_list({f.limit}, {_status(f.status)}, {f.name})")
        else:
            template += "%b"
            args.append(f"_encode_unsuccess_list({f.limit}, {_status(f.status)}, {f.name})")
    if screen:
        lines.append("        if (")
        lines += [f"            {'or ' if i else ''}{cond}" for i, cond in enumerate(screen)]
        lines += ["        ):", f"            return encode_{name}_checked(pdu, seq)"]
    if octets:
        # bytes() refuses what the reference refuses (out of 0..255, not an int) where
        # %c alone would take a one-octet bytes object.
        lines.append(f"        bytes(({', '.join(octets)},))  # octets in 0..255")
    if fields:
        lines.append(f'        body = b"{template}" % (')
        lines += [f"            {a}," for a in args]
        lines.append("        )")
    else:
        lines.append('        body = b""')
    lines += [
        "        tlvs = pdu.tlvs",
        "        if tlvs != ():  # not truthiness: a falsy non-tuple must fail as in the reference",
        "            body += _encode_tlvs(tlvs)",
        "        return (",
        f"            _HEADER_pack(16 + len(body), {_hex(cls)}, pdu.command_status, seq)",
        "            + body",
        "        )",
        "    except (_BodyError, *_ENCODE_ERRORS):",
        f"        return encode_{name}_checked(pdu, seq)",
    ]
    return lines


# -- copying and building ------------------------------------------------------------


def _copier(cls: type[Pdu], name: str) -> list[str]:
    slots = [f.name for f in dataclasses.fields(cls)]
    lines = [
        f"def with_sequence_number_{name}(pdu, seq):",
        '    """A copy of ``pdu`` with ``sequence_number`` set to ``seq``."""',
        f"    copy = _new({cls.__name__})",
        "    _set_sequence_number(copy, seq)",
    ]
    lines += [f"    _set_{s}(copy, pdu.{s})" for s in slots if s != "sequence_number"]
    lines.append("    return copy")
    return lines


def _init(cls: type[Pdu]) -> list[str]:
    params = [f"{f.name}={_literal(f.default)}" for f in dataclasses.fields(cls)]
    lines = ["def __init__(", "    self,", "    *,"]
    lines += [f"    {p}," for p in params]
    lines += [
        "):",
        '    """The dataclass signature; the slots are set through their descriptors."""',
    ]
    lines += [f"    _set_{f.name}(self, {f.name})" for f in dataclasses.fields(cls)]
    return lines


def _check_class(cls: type[Pdu]) -> None:
    """The generated ``__init__`` reproduces plain keyword-only fields with defaults."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: __post_init__ is not supported")
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING or not f.init or not f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: only kw_only fields with defaults")


def pdu_source(cls: type[Pdu]) -> str:
    """The generated source of ``cls``'s functions (see the module docstring)."""
    _check_class(cls)
    name = _pdu_name(cls)
    kind = "response" if cls.command_id & 0x80000000 else "request"
    header = [
        f"# Generated from {cls.__name__}.FIELDS by smppgw.protocol.codegen; do not edit.",
        f"# {name}: command_id 0x{cls.command_id:08X}, a {kind}.",
    ]
    blocks = [
        header,
        *_decoders(cls, name),
        _checked_encoder(cls, name),
        _fast_encoder(cls, name),
        _copier(cls, name),
        _init(cls),
    ]
    return "\n\n\n".join("\n".join(block) for block in blocks) + "\n"


def _slot_setter(cls: type[Pdu], name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name].__set__
    raise AssertionError(f"{cls.__name__} has no slot {name}")


def compile_pdu_functions(cls: type[Pdu], helpers: dict[str, Any]) -> CompiledPdu:
    """Generate, compile and register (with :mod:`linecache`) ``cls``'s functions.

    ``helpers`` must supply every name in :data:`HELPERS`.
    """
    missing = HELPERS - helpers.keys()
    if missing:
        raise TypeError(f"helpers missing: {sorted(missing)}")
    source = pdu_source(cls)
    filename = f"<smppgw.codegen {cls.__name__}>"
    namespace: dict[str, Any] = {"__name__": f"smppgw.codegen.{cls.__name__}"}
    namespace.update(CommandStatus.__members__)
    namespace.update(helpers)
    namespace[cls.__name__] = cls
    for f in dataclasses.fields(cls):
        namespace[f"_set_{f.name}"] = _slot_setter(cls, f.name)
    exec(compile(source, filename, "exec"), namespace)  # our own source, from the FIELDS tables
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    name = _pdu_name(cls)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    return CompiledPdu(
        source=source,
        filename=filename,
        decode=namespace[f"decode_{name}"],
        decode_checked=namespace.get(f"decode_{name}_checked", namespace[f"decode_{name}"]),
        encode=namespace[f"encode_{name}"],
        encode_checked=namespace[f"encode_{name}_checked"],
        with_sequence_number=namespace[f"with_sequence_number_{name}"],
        init=init,
    )
