"""Releases: every deploy, config change and rollback appends one immutable release.

A release whose slug declares a ``release`` process type starts ``pending`` and becomes
``succeeded`` or ``failed`` when its release command has run (``releasephase``); the data plane only
runs an app's newest succeeded release. Whoever appends a pending release hands it to the release
phase once its transaction has committed: ``launch`` (in the background, for the API) or
``complete_deploy`` (in the push).

The first deploy of an app also applies its ``app.json`` (``plan_deploy`` → ``record_deploy`` →
``complete_deploy``): ``env`` fills unset config vars in the deploy's release, ``formation`` scales
the process types, ``scripts.postdeploy`` runs once after the release succeeded. ``buildpacks`` of
app.json is used by every build while the app has no buildpack installations.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.build.output import BuildOutput
from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.buildpacks import canonical_list, installed_urls
from dockyard.control.context import Platform
from dockyard.control.releasephase import (
    failure_reason,
    run_one_off,
    run_release_phase,
    start_in_background,
)
from dockyard.control.slugs import SlugUpload, collect_garbage_quietly, resolve, slug_available
from dockyard.domain.appjson import (
    FILENAME,
    MAX_BYTES,
    RELEASE_TYPE,
    SECRET_BYTES,
    AppJson,
    env_changes,
    parse_app_json,
)
from dockyard.domain.config import apply_changes
from dockyard.domain.formation import DEFAULT_SIZE, initial_quantity
from dockyard.domain.releases import rollback_description
from dockyard.domain.requests import RequestContext
from dockyard.errors import BuildError, InvalidError
from dockyard.runtime.base import Runtime
from dockyard.store import Tx
from dockyard.store.records import Account, App, Release

POSTDEPLOY_TYPE = "postdeploy"


def append_release(
    tx: Tx,
    app: App,
    *,
    slug_id: str | None,
    config: Mapping[str, str],
    description: str,
    user: Account | None,
) -> Release:
    """Append a release inside ``tx`` and give every process type of its slug a formation entry
    (``web`` starts at one dyno, other types at zero, as on Heroku; ``release`` never has one). The
    release is ``pending`` when its slug declares a release command: the caller then hands it to
    the release phase after commit (``launch`` or ``complete_deploy``), and logs it."""
    process_types: Mapping[str, str] = {}
    if slug_id is not None:
        process_types = tx.get_slug(slug_id).process_types
    release = tx.create_release(
        app.id,
        slug_id=slug_id,
        config=config,
        description=description,
        user_id=None if user is None else user.id,
        status="pending" if process_types.get(RELEASE_TYPE) else "succeeded",
    )
    for ptype in process_types:
        if ptype != RELEASE_TYPE:
            tx.ensure_formation(app.id, ptype, quantity=initial_quantity(ptype), size=DEFAULT_SIZE)
    tx.update_app(app.id, released_at=release.created_at)
    return release


def log_release(platform: Platform, app: App, release: Release, user: Account | None) -> None:
    by = f" by {user.email}" if user else ""
    platform.log(app.id, "heroku", "api", f"Release v{release.version} created{by}")


def launch(platform: Platform, app: App, release: Release) -> None:
    """After the release's transaction: run its release phase in a background thread when it is
    pending, and collect unused slugs once the release is settled."""

    def settled(_release: Release) -> None:
        collect_garbage_quietly(platform)

    if start_in_background(platform, app, release, then=settled) is None:
        settled(release)


def list_releases(platform: Platform, account: Account, app_ref: str) -> list[Release]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return tx.list_releases(app.id)


def get_release(platform: Platform, account: Account, app_ref: str, release_ref: str) -> Release:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return tx.get_release(app.id, release_ref)


def rollback(
    platform: Platform,
    account: Account,
    app_ref: str,
    release_ref: str,
    *,
    context: RequestContext | None = None,
) -> Release:
    """A new release that copies an earlier release's slug and config (Heroku's rollback). Its
    release command, if any, runs in the background: the answer is the release, maybe pending."""
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "deploy")
        target = tx.get_release(app.id, release_ref)
        if target.status != "succeeded":
            raise InvalidError(
                f"Release v{target.version} did not succeed and cannot be rolled back to"
            )
        if (
            target.slug_id is None
            and tx.current_release(app.id) is not None
            and any(r.slug_id for r in tx.list_releases(app.id))
        ):
            raise InvalidError(
                f"Release v{target.version} has no slug (nothing was deployed then); roll back to a "
                "release that was deployed"
            )
        if target.slug_id is not None and _collected(platform, tx, app, target.slug_id):
            raise InvalidError(
                f"The slug of v{target.version} was removed by garbage collection (an app keeps "
                f"the slugs of its newest {platform.settings.build.slug_history} releases); "
                "roll back to a newer release or deploy that code again"
            )
        tx.replace_config(app.id, target.config)
        release = append_release(
            tx,
            app,
            slug_id=target.slug_id,
            config=target.config,
            description=rollback_description(target.version),
            user=account,
        )
        audit.record_app_event(
            platform,
            "release.rollback",
            account,
            context,
            app,
            target=("release", release.id, f"v{release.version}"),
            details={"to_version": target.version, "release": release.version},
        )
    platform.log(app.id, "heroku", "api", f"Rollback to v{target.version} by {account.email}")
    log_release(platform, app, release, account)
    launch(platform, app, release)
    return release


def record_release(
    platform: Platform,
    account: Account | None,
    context: RequestContext | None,
    app: App,
    release: Release,
) -> None:
    """Audit a new release (``release.create``) inside the transaction that appends it."""
    audit.record_app_event(
        platform,
        "release.create",
        account,
        context,
        app,
        target=("release", release.id, f"v{release.version}"),
        details={"release": release.version, "slug": release.slug_id, "status": release.status},
    )


def _collected(platform: Platform, tx: Tx, app: App, slug_id: str) -> bool:
    """Whether garbage collection removed this slug's image: it is gone, and none of the app's
    newest releases (whose slugs are always kept) has it."""
    if slug_available(platform, tx.get_slug(slug_id)):
        return False
    newest = tx.list_releases(app.id)[-platform.settings.build.slug_history :]
    return all(r.slug_id != slug_id for r in newest)


def release_slug(
    platform: Platform,
    account: Account,
    app_ref: str,
    slug_id: str,
    description: str | None = None,
    *,
    context: RequestContext | None = None,
) -> Release:
    """Release an existing slug of this app with the current config (``POST /apps/{app}/releases``)."""
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "deploy")
        slug = resolve(platform, tx, app, slug_id)
        if isinstance(slug, SlugUpload):
            raise InvalidError(
                f"Slug {slug_id} has no content yet: PUT its tarball to its blob.url first",
                field="slug",
            )
        if _collected(platform, tx, app, slug.id):
            raise InvalidError(
                f"The image of slug {slug.id} was removed by garbage collection; build it again"
            )
        release = append_release(
            tx,
            app,
            slug_id=slug.id,
            config=tx.get_config(app.id),
            description=description or f"Deploy {slug.commit[:8] if slug.commit else slug.id[:8]}",
            user=account,
        )
        record_release(platform, account, context, app, release)
    log_release(platform, app, release, account)
    launch(platform, app, release)
    return release


# -- deploys: app.json, the release phase in the push, postdeploy -----------------------------------


@dataclass(frozen=True)
class DeployPlan:
    """What a deploy takes from the app's state and its app.json, decided before the build."""

    manifest: AppJson | None = None
    first_deploy: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    """Config vars app.json adds on the first deploy (values and generated secrets)."""
    buildpacks: tuple[str, ...] | None = None
    """Buildpack references to build with, in order; None: detect."""


def read_manifest(source_dir: Path) -> AppJson | None:
    """The parsed ``app.json`` of a source tree, None when there is none; ``InvalidError`` when it
    is malformed."""
    path = source_dir / FILENAME
    if path.is_symlink() or not path.exists():
        if path.is_symlink():
            raise InvalidError(f"{FILENAME} is a symbolic link: commit the file itself")
        return None
    if not path.is_file():
        raise InvalidError(f"{FILENAME} is not a regular file")
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    return parse_app_json(data)


def _generate_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def plan_deploy(
    platform: Platform,
    app: App,
    source_dir: Path,
    *,
    buildpacks: Sequence[str] | None = None,
) -> DeployPlan:
    """Read app.json and the app's state; raise ``InvalidError`` (nothing changed) for a malformed
    app.json or required config vars that are missing on the first deploy. ``buildpacks`` given
    explicitly (the Build API) win over the app's installations, which win over app.json's."""
    manifest = read_manifest(source_dir)
    with platform.store.read() as tx:
        first = not any(
            r.slug_id is not None and r.status == "succeeded" for r in tx.list_releases(app.id)
        )
        config = tx.get_config(app.id)
        installed = installed_urls(tx, app.id)
    env: dict[str, str] = {}
    if manifest is not None and first:
        env = env_changes(manifest, config, _generate_secret)
        apply_changes(config, env)  # the 32 KB budget and the key rules, before building
    chosen: tuple[str, ...] | None = None
    if buildpacks is not None:
        chosen = tuple(url for url, _ in canonical_list(buildpacks, platform.settings))
    elif installed:
        chosen = tuple(installed)
    elif manifest is not None and manifest.buildpacks:
        try:
            chosen = tuple(url for url, _ in canonical_list(manifest.buildpacks, platform.settings))
        except InvalidError as exc:
            raise InvalidError(
                f"{FILENAME}: buildpacks: {exc.message}", field="buildpacks"
            ) from exc
    return DeployPlan(manifest, first, env, chosen or None)


def record_deploy(
    tx: Tx,
    app: App,
    plan: DeployPlan,
    *,
    slug_id: str,
    description: str,
    user: Account | None,
) -> Release:
    """Inside the deploy's transaction: app.json's config vars (those still unset), the release,
    and app.json's formation on the first deploy."""
    config = tx.get_config(app.id)
    added = {key: value for key, value in plan.env.items() if key not in config}
    if added:
        config = apply_changes(config, added)
        tx.replace_config(app.id, config)
    release = append_release(
        tx, app, slug_id=slug_id, config=config, description=description, user=user
    )
    if plan.first_deploy and plan.manifest is not None:
        process_types = tx.get_slug(slug_id).process_types
        for spec in plan.manifest.formation:
            if spec.type in process_types:
                tx.update_formation(app.id, spec.type, quantity=spec.quantity, size=spec.size)
    return release


def formation_notes(plan: DeployPlan, process_types: Mapping[str, str]) -> list[str]:
    """app.json formation entries the slug has no process type for (they are skipped)."""
    if not plan.first_deploy or plan.manifest is None:
        return []
    return [
        f"{FILENAME}: formation.{spec.type} skipped: the app declares no {spec.type} process type"
        for spec in plan.manifest.formation
        if spec.type not in process_types
    ]


def complete_deploy(
    platform: Platform,
    app: App,
    release: Release,
    plan: DeployPlan,
    output: BuildOutput,
    *,
    runtime: Runtime | None = None,
) -> Release:
    """After the deploy's transaction: run the release phase in the push (``BuildError`` when it
    fails: the release is not deployed), then app.json's ``scripts.postdeploy`` on the first deploy,
    then slug garbage collection."""
    finished, reason = run_release_phase(platform, app, release, output=output, runtime=runtime)
    if reason is not None:
        with platform.store.read() as tx:
            current = tx.current_release(app.id)
        keeps = (
            f"v{current.version} keeps serving"
            if current is not None and current.slug_id is not None
            else "nothing was deployed"
        )
        collect_garbage_quietly(platform)
        message = f"Release v{release.version} failed: {reason}. It was not deployed; {keeps}."
        with contextlib.suppress(OSError):  # the pusher may be gone
            output.error(message)
        raise BuildError(message)
    if plan.first_deploy and plan.manifest is not None and plan.manifest.postdeploy is not None:
        _postdeploy(platform, app, finished, plan.manifest, output, runtime)
    collect_garbage_quietly(platform)
    return finished


def _postdeploy(
    platform: Platform,
    app: App,
    release: Release,
    manifest: AppJson,
    output: BuildOutput,
    runtime: Runtime | None,
) -> None:
    """Run ``scripts.postdeploy`` once; its failure is reported but leaves the release deployed."""
    script = manifest.postdeploy
    if script is None or release.slug_id is None:
        return
    with platform.store.read() as tx:
        slug = tx.get_slug(release.slug_id)
    timeout = platform.settings.build.release_phase_timeout
    output.blank()
    output.line(f"Running postdeploy script from {FILENAME}...")
    output.blank()
    result = run_one_off(
        platform,
        app,
        release,
        slug,
        process_type=POSTDEPLOY_TYPE,
        command=script.command,
        timeout=timeout,
        on_line=output.line,
        runtime=runtime,
        size=script.size,
    )
    if result.succeeded:
        output.line("Postdeploy script.... done.")
        return
    reason = failure_reason(result, script.command, timeout)
    with contextlib.suppress(OSError):
        output.error(f"scripts.postdeploy failed: {reason}")
        output.error(f"v{release.version} stays deployed; run the script again by hand if needed")
    platform.log(app.id, "heroku", "api", f"scripts.postdeploy failed: {reason}")
