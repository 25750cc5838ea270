"""Store methods: slugs, builds, buildpack installations, uploaded sources and releases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from dockyard.errors import ConflictError, NotFoundError
from dockyard.store import records as r
from dockyard.store import rows
from dockyard.store.models import (
    BuildpackInstallationRow,
    BuildRow,
    ReleaseRow,
    SlugRow,
    SourceRow,
)
from dockyard.store.unit import TxBase, looks_like_uuid, new_id
from dockyard.types import (
    AccountId,
    AppId,
    BuildStatus,
    ReleaseStatus,
    ReleaseVersion,
)

_RELEASE_VERSION_ATTEMPTS = 20


class BuildsTx(TxBase):
    # -- slugs and builds -----------------------------------------------------------------------------

    def create_slug(
        self,
        app_id: str,
        *,
        digest: str,
        size: int,
        process_types: Mapping[str, str],
        commit: str | None,
        stack: str,
    ) -> r.Slug:
        row = SlugRow(
            id=new_id(),
            app_id=app_id,
            digest=digest,
            size=size,
            process_types=dict(process_types),
            commit=commit,
            stack=stack,
            created_at=self._now(),
        )
        self.session.add(row)
        self.session.flush()
        return rows.slug_record(row)

    def get_slug(self, slug_id: str) -> r.Slug:
        row = self.session.get(SlugRow, slug_id)
        if row is None:
            raise NotFoundError(f"Slug {slug_id} not found")
        return rows.slug_record(row)

    def slug_digests_in_use(self) -> set[str]:
        return set(self.session.scalars(select(SlugRow.digest).distinct()))

    def create_build(
        self,
        app_id: str,
        *,
        user_id: str | None,
        source_version: str | None,
        buildpacks: Sequence[str] | None = None,
    ) -> r.Build:
        now = self._now()
        row = BuildRow(
            id=new_id(),
            buildpacks=None if buildpacks is None else list(buildpacks),
            app_id=app_id,
            status="pending",
            source_version=source_version,
            user_id=user_id,
            slug_id=None,
            release_id=None,
            output="",
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self.session.flush()
        return self._build(row)

    def finish_build(
        self,
        build_id: str,
        *,
        status: BuildStatus,
        output: str,
        slug_id: str | None = None,
        release_id: str | None = None,
    ) -> r.Build:
        row = self.session.get(BuildRow, build_id)
        if row is None:
            raise NotFoundError(f"Build {build_id} not found")
        row.status = status
        row.output = output
        row.slug_id = slug_id
        row.release_id = release_id
        row.updated_at = self._now()
        return self._build(row)

    def get_build(self, app_id: str, build_id: str) -> r.Build:
        row = self.session.get(BuildRow, build_id) if looks_like_uuid(build_id) else None
        if row is None or row.app_id != app_id:
            raise NotFoundError(f"Couldn't find that build: {build_id}")
        return self._build(row)

    def list_builds(self, app_id: str) -> list[r.Build]:
        found = self.session.scalars(
            select(BuildRow)
            .where(BuildRow.app_id == app_id)
            .order_by(BuildRow.created_at, BuildRow.id)
        )
        return [self._build(row) for row in found]

    def _build(self, row: BuildRow) -> r.Build:
        return r.Build(
            id=row.id,
            app_id=AppId(row.app_id),
            status=rows.build_status(row.status),
            source_version=row.source_version,
            user_id=None if row.user_id is None else AccountId(row.user_id),
            user_email=self._email(row.user_id),
            slug_id=row.slug_id,
            release_id=row.release_id,
            output=row.output,
            created_at=row.created_at,
            updated_at=row.updated_at,
            buildpacks=None if row.buildpacks is None else tuple(row.buildpacks),
        )

    # -- buildpack installations and uploaded sources ------------------------------------------------

    def list_buildpacks(self, app_id: str) -> list[r.BuildpackInstallation]:
        found = self.session.scalars(
            select(BuildpackInstallationRow)
            .where(BuildpackInstallationRow.app_id == app_id)
            .order_by(BuildpackInstallationRow.ordinal)
        )
        return [
            r.BuildpackInstallation(AppId(row.app_id), row.ordinal, row.url, row.name)
            for row in found
        ]

    def replace_buildpacks(self, app_id: str, buildpacks: Sequence[tuple[str, str]]) -> None:
        """Make ``buildpacks`` (url, name), in order, the app's whole list (Heroku's PUT semantics)."""
        self.session.execute(
            delete(BuildpackInstallationRow).where(BuildpackInstallationRow.app_id == app_id)
        )
        self.session.add_all(
            BuildpackInstallationRow(app_id=app_id, ordinal=i, url=url, name=name)
            for i, (url, name) in enumerate(buildpacks, start=1)
        )

    def create_source(self, account_id: str, *, expires_at: datetime) -> r.Source:
        row = SourceRow(
            id=new_id(),
            account_id=account_id,
            size=None,
            checksum=None,
            created_at=self._now(),
            expires_at=expires_at,
        )
        self.session.add(row)
        self.session.flush()
        return rows.source_record(row)

    def update_source(self, source_id: str, *, size: int, checksum: str) -> r.Source:
        row = self.session.get(SourceRow, source_id)
        if row is None:
            raise NotFoundError(f"Couldn't find that source: {source_id}")
        row.size = size
        row.checksum = checksum
        return rows.source_record(row)

    def get_source(self, source_id: str) -> r.Source:
        row = self.session.get(SourceRow, source_id) if looks_like_uuid(source_id) else None
        if row is None:
            raise NotFoundError(f"Couldn't find that source: {source_id}")
        return rows.source_record(row)

    def delete_sources_expired_before(self, moment: datetime) -> list[str]:
        expired = list(
            self.session.scalars(select(SourceRow.id).where(SourceRow.expires_at < moment))
        )
        self.session.execute(delete(SourceRow).where(SourceRow.id.in_(expired)))
        return expired

    # -- releases -------------------------------------------------------------------------------------

    def create_release(
        self,
        app_id: str,
        *,
        slug_id: str | None,
        config: Mapping[str, str],
        description: str,
        user_id: str | None,
        status: ReleaseStatus = "succeeded",
    ) -> r.Release:
        """Append the next version. The (app, version) unique constraint decides between concurrent
        writers; the loser retries with the next number."""
        for _ in range(_RELEASE_VERSION_ATTEMPTS):
            latest = self.session.scalar(
                select(func.max(ReleaseRow.version)).where(ReleaseRow.app_id == app_id)
            )
            now = self._now()
            row = ReleaseRow(
                id=new_id(),
                app_id=app_id,
                version=(latest or 0) + 1,
                slug_id=slug_id,
                config=dict(config),
                description=description,
                status=status,
                user_id=user_id,
                created_at=now,
                updated_at=now,
            )
            try:
                with self.session.begin_nested():
                    self.session.add(row)
                    self.session.flush()
            except IntegrityError:
                continue
            return self._release(row)
        raise ConflictError("Another release is being created for this app right now; try again")

    def list_releases(self, app_id: str) -> list[r.Release]:
        found = self.session.scalars(
            select(ReleaseRow).where(ReleaseRow.app_id == app_id).order_by(ReleaseRow.version)
        )
        return [self._release(row) for row in found]

    def get_release(self, app_id: str, id_or_version: str | int) -> r.Release:
        query = select(ReleaseRow).where(ReleaseRow.app_id == app_id)
        text = str(id_or_version)
        if text.isdigit():
            query = query.where(ReleaseRow.version == int(text))
        elif looks_like_uuid(text):
            query = query.where(ReleaseRow.id == text)
        else:
            raise NotFoundError(f"Couldn't find that release: {id_or_version}")
        row = self.session.scalars(query).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that release: {id_or_version}")
        return self._release(row)

    def current_release(self, app_id: str) -> r.Release | None:
        row = self.session.scalars(
            select(ReleaseRow)
            .where(ReleaseRow.app_id == app_id, ReleaseRow.status == "succeeded")
            .order_by(ReleaseRow.version.desc())
            .limit(1)
        ).first()
        return None if row is None else self._release(row)

    def _release(self, row: ReleaseRow) -> r.Release:
        return r.Release(
            id=row.id,
            app_id=AppId(row.app_id),
            version=ReleaseVersion(row.version),
            slug_id=row.slug_id,
            config=dict(row.config),
            description=row.description,
            status=rows.release_status(row.status),
            user_id=None if row.user_id is None else AccountId(row.user_id),
            user_email=self._email(row.user_id),
            created_at=row.created_at,
            updated_at=row.updated_at,
            output=row.output,
        )

    def finish_release(self, release_id: str, *, status: ReleaseStatus, output: str) -> r.Release:
        """Record the outcome of a pending release (its release phase); only pending releases change."""
        row = self.session.get(ReleaseRow, release_id)
        if row is None:
            raise NotFoundError(f"Couldn't find that release: {release_id}")
        if row.status != "pending":
            raise ConflictError(f"Release v{row.version} is already {row.status}")
        row.status = status
        row.output = output
        row.updated_at = self._now()
        return self._release(row)
