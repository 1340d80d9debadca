"""Service layer, one stack per service. Every kind (``Service.kind``) runs its task definition on
Fargate + Fargate Spot in private subnets with its own roles, secrets by reference, logs, alarms
and release role (the shared builders: ``roles``, ``containers``, ``network``, ``alarms``,
``scaling``, ``release``); each kind's module adds what makes it that kind (``web``: the load
balancer's target groups, listener rules and request scaling; ``backend``: Service Connect;
``worker``: its queue and backlog scaling; ``job``: its schedule)."""

from __future__ import annotations

from collections.abc import Callable

from troposphere import Template

from infra_templates.config import Environment
from templates.service import backend, job, web, worker
from templates.service.containers import IMAGE_TAG, image
from templates.service.release import PRE_RELEASE_CODE

__all__ = ["IMAGE_TAG", "PRE_RELEASE_CODE", "build", "image"]


KINDS: dict[str, Callable[[Environment, str], Template]] = {
    "web": web.build,
    "backend": backend.build,
    "worker": worker.build,
    "job": job.build,
}


def build(env: Environment, name: str) -> Template:
    """The stack of service ``name``, built by its kind's module."""
    return KINDS[env.services[name].kind](env, name)
