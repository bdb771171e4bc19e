"""Read SWEEP.CLEAR / SWEEP.STATUS / SWEEP.CANCEL replies the same way in RESP2 and RESP3."""


def sweep_fields(reply):
    """The reply as a dict with str keys: {"scanned": 200000, "deleted": 100000, ...}.

    RESP3 (redis-py 8's default) gives a dict; RESP2 (protocol=2) a flat list
    [field, value, field, value, ...]. Names and texts come as bytes unless the client
    decodes responses; the double `progress` comes as a float (RESP3) or text (RESP2).
    """
    pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
    return {_text(name): _value(value) for name, value in pairs}


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _value(v):
    v = _text(v)
    if isinstance(v, str):
        for number in (int, float):
            try:
                return number(v)
            except ValueError:
                pass
    return v
