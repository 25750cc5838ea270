"""Store methods: accounts, API keys, SSH keys and collaborators."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

from dockyard.errors import NotFoundError
from dockyard.store import records as r
from dockyard.store import rows
from dockyard.store.models import (
    AccountRow,
    ApiKeyRow,
    CollaboratorRow,
    SshKeyRow,
)
from dockyard.store.unit import TxBase, looks_like_uuid, new_id
from dockyard.types import (
    AccountId,
    AppId,
)


class AccountsTx(TxBase):
    # -- accounts and API keys ------------------------------------------------------------------------

    def create_account(self, email: str, name: str = "") -> r.Account:
        now = self._now()
        row = AccountRow(
            id=new_id(), email=email.lower(), name=name, created_at=now, updated_at=now
        )
        self.session.add(row)
        self._flush_unique(f"An account with email {email} already exists")
        return rows.account_record(row)

    def get_account(self, account_id: str) -> r.Account:
        row = self.session.get(AccountRow, account_id)
        if row is None:
            raise NotFoundError(f"Account {account_id} not found")
        return rows.account_record(row)

    def find_account(self, id_or_email: str) -> r.Account:
        column = AccountRow.id if looks_like_uuid(id_or_email) else AccountRow.email
        row = self.session.scalars(select(AccountRow).where(column == id_or_email.lower())).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that user: {id_or_email}")
        return rows.account_record(row)

    def list_accounts(self) -> list[r.Account]:
        return [
            rows.account_record(x)
            for x in self.session.scalars(select(AccountRow).order_by(AccountRow.email))
        ]

    def add_api_key(self, account_id: str, token_hash: str, description: str = "") -> r.ApiKey:
        row = ApiKeyRow(
            id=new_id(),
            account_id=account_id,
            token_hash=token_hash,
            description=description,
            created_at=self._now(),
            last_used_at=None,
        )
        self.session.add(row)
        self._flush_unique("That API key already exists")
        return r.ApiKey(
            id=row.id,
            account_id=AccountId(row.account_id),
            description=row.description,
            created_at=row.created_at,
            last_used_at=None,
        )

    def account_for_token(self, token_hash: str) -> r.Account | None:
        row = self.session.execute(
            select(AccountRow, ApiKeyRow)
            .join(ApiKeyRow, ApiKeyRow.account_id == AccountRow.id)
            .where(ApiKeyRow.token_hash == token_hash)
        ).first()
        return None if row is None else rows.account_record(row[0])

    def touch_api_key(self, token_hash: str) -> None:
        self.session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.token_hash == token_hash)
            .values(last_used_at=self._now())
        )

    # -- collaborators --------------------------------------------------------------------------------

    def add_collaborator(self, app_id: str, account_id: str) -> r.Collaborator:
        now = self._now()
        row = CollaboratorRow(
            id=new_id(), app_id=app_id, account_id=account_id, created_at=now, updated_at=now
        )
        self.session.add(row)
        self._flush_unique("That user is already a collaborator on this app")
        return self._collaborator(row)

    def list_collaborators(self, app_id: str) -> list[r.Collaborator]:
        found = self.session.scalars(
            select(CollaboratorRow)
            .where(CollaboratorRow.app_id == app_id)
            .order_by(CollaboratorRow.created_at)
        )
        return [self._collaborator(row) for row in found]

    def is_collaborator(self, app_id: str, account_id: str) -> bool:
        query = select(func.count()).where(
            CollaboratorRow.app_id == app_id, CollaboratorRow.account_id == account_id
        )
        return self.session.scalar(query) != 0

    def remove_collaborator(self, collaborator_id: str) -> None:
        self.session.execute(delete(CollaboratorRow).where(CollaboratorRow.id == collaborator_id))

    def _collaborator(self, row: CollaboratorRow) -> r.Collaborator:
        return r.Collaborator(
            id=row.id,
            app_id=AppId(row.app_id),
            account_id=AccountId(row.account_id),
            email=self._email(row.account_id) or "",
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- SSH keys -------------------------------------------------------------------------------------

    def add_ssh_key(
        self, account_id: str, public_key: str, fingerprint: str, comment: str
    ) -> r.SshKey:
        now = self._now()
        row = SshKeyRow(
            id=new_id(),
            account_id=account_id,
            public_key=public_key,
            fingerprint=fingerprint,
            comment=comment,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self._flush_unique("That key is already registered (keys can belong to one account only)")
        return rows.ssh_key_record(row)

    def list_ssh_keys(self, account_id: str) -> list[r.SshKey]:
        found = self.session.scalars(
            select(SshKeyRow)
            .where(SshKeyRow.account_id == account_id)
            .order_by(SshKeyRow.created_at)
        )
        return [rows.ssh_key_record(row) for row in found]

    def account_for_ssh_key(self, fingerprint: str) -> r.Account | None:
        """The account a registered public key (by its ``SHA256:`` fingerprint) belongs to."""
        row = self.session.execute(
            select(AccountRow)
            .join(SshKeyRow, SshKeyRow.account_id == AccountRow.id)
            .where(SshKeyRow.fingerprint == fingerprint)
        ).first()
        return None if row is None else rows.account_record(row[0])

    def delete_ssh_key(self, key_id: str) -> None:
        self.session.execute(delete(SshKeyRow).where(SshKeyRow.id == key_id))
