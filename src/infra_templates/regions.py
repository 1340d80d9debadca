"""AWS regions and their availability zones, as cfn-lint knows them.

We read cfn-lint's table rather than keep one of our own: it is maintained with every release, and
it is the same table the lint gate checks templates against, so settings and lint never disagree.
"""

from cfnlint.helpers import AVAILABILITY_ZONES

REGIONS: tuple[str, ...] = tuple(sorted(AVAILABILITY_ZONES))


def zones_of(region: str) -> tuple[str, ...]:
    return tuple(AVAILABILITY_ZONES.get(region, ()))
