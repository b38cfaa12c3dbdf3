"""Telling the time in HTTP's formats, from a wall clock reading handed in.

Protocols may not read the time themselves, nor import ``time`` (or
``email.utils``, which does), so the calendar arithmetic is done here, on
seconds since the Unix epoch that the transport's clock gave
(:class:`~weft.protocols.contract.WallClock`).  Both formats change once a
second and a busy server answers many requests a second, so each keeps
the last second it formatted: a request within the same second costs an
``int()`` and a comparison.

* :func:`http_date`: RFC 9110's IMF-fixdate (section 5.6.7), for ``Date``:
  ``Sun, 06 Nov 1994 08:49:37 GMT``.
* :func:`log_time`: the Common Log Format's time, in UTC:
  ``06/Nov/1994:08:49:37 +0000``.
"""

from __future__ import annotations

__all__ = ["http_date", "log_time"]

_DAYS = ("Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed")  # 1970-01-01 was a Thursday
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _civil(days: int) -> tuple[int, int, int]:
    """``(year, month, day)`` of the day ``days`` after 1970-01-01 (proleptic
    Gregorian): the era arithmetic of Howard Hinnant's ``civil_from_days``
    (eras of 400 years, each starting on a March 1st, so the leap day ends
    a year)."""
    days += 719_468  # from 0000-03-01
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153  # 0 is March
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    year = year_of_era + era * 400 + (month <= 2)
    return year, month, day


def _split(second: int) -> tuple[int, int, int, int, int, int, int]:
    """``(weekday, year, month, day, hour, minute, second)`` of a whole second since the epoch, UTC."""
    days, in_day = divmod(second, 86_400)
    year, month, day = _civil(days)
    hour, in_hour = divmod(in_day, 3600)
    minute, sec = divmod(in_hour, 60)
    return days % 7, year, month, day, hour, minute, sec


def _format_http_date(second: int) -> bytes:
    weekday, year, month, day, hour, minute, sec = _split(second)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[weekday].encode(),
        day,
        _MONTHS[month - 1].encode(),
        year,
        hour,
        minute,
        sec,
    )


def _format_log_time(second: int) -> str:
    _, year, month, day, hour, minute, sec = _split(second)
    return f"{day:02d}/{_MONTHS[month - 1]}/{year:04d}:{hour:02d}:{minute:02d}:{sec:02d} +0000"


# One (second, text) pair each, replaced whole: a reader on another thread
# (the blocking driver serves connections on threads) sees a matching pair.
_last_http_date: tuple[int, bytes] = (-1, b"")
_last_log_time: tuple[int, str] = (-1, "")


def http_date(wall_time: float) -> bytes:
    """``wall_time`` (seconds since the epoch) as an IMF-fixdate, ``b"Sun, 06 Nov 1994 08:49:37 GMT"``."""
    global _last_http_date
    second = int(wall_time)
    cached_second, text = _last_http_date
    if second != cached_second:
        text = _format_http_date(second)
        _last_http_date = (second, text)
    return text


def log_time(wall_time: float) -> str:
    """``wall_time`` (seconds since the epoch) as the Common Log Format's
    time, in UTC: ``06/Nov/1994:08:49:37 +0000``."""
    global _last_log_time
    second = int(wall_time)
    cached_second, text = _last_log_time
    if second != cached_second:
        text = _format_log_time(second)
        _last_log_time = (second, text)
    return text
