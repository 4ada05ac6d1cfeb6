"""Broker accounts: linking them (credentials into the vault), listing them masked, and handing
adapters an ``AccountRef`` with the secrets decrypted - the only place plaintext exists.

Every user gets a paper account, funded with ``paper_initial_cash``, when they are created.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hoga.brokers.base import AccountRef, Broker, BrokerError
from hoga.domain.clock import Clock
from hoga.domain.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from hoga.domain.portfolio import Position
from hoga.domain.secret import Secret, mask
from hoga.security import keystate
from hoga.security.brokerurls import BrokerUrlPolicy
from hoga.security.vault import Vault, VaultError, account_aad
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import accounts as repo
from hoga.store.repos import audit, ledger
from hoga.store.repos import orders as orders_repo
from hoga.store.repos.accounts import AccountRecord
from hoga.store.repos.users import UserRecord

log = logging.getLogger(__name__)

BROKERS = ("paper", "kis", "kiwoom", "kiwoom_openapi")
ENVS = ("real", "mock")
_ACCOUNT_RE = re.compile(r"\d{8}-?\d{2}|\d{10,12}")
_KEY_RE = re.compile(r"[\x21-\x7e]{8,512}")


@dataclass(frozen=True, slots=True)
class LinkRequest:
    broker: str
    env: str
    account_no: str
    app_key: str
    app_secret: str
    hts_id: str | None = None
    label: str | None = None
    base_url: str | None = None
    ws_url: str | None = None
    commission_rate: Decimal | None = None


def public_view(acct: AccountRecord, cash: int | None = None) -> dict[str, Any]:
    """What the API shows: masked values only, never ciphertext or secrets."""
    return {
        "id": acct.id,
        "broker": acct.broker,
        "env": acct.env,
        "label": acct.label,
        "account_no": acct.account_masked,
        "app_key": acct.app_key_masked,
        "app_secret": "****" if acct.secrets_enc else None,
        "commission_rate": str(acct.commission_rate),
        "base_url": acct.base_url,
        "cash": cash,
        "last_test": None
        if acct.last_test_at is None
        else {
            "at": acct.last_test_at.isoformat(),
            "ok": acct.last_test_ok,
            "message": acct.last_test_message,
        },
        "created_at": acct.created_at.isoformat(),
    }


class AccountService:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        clock: Clock,
        brokers: dict[str, Broker],
        *,
        paper_cash: int,
        commission_rate: Decimal,
        url_policy: BrokerUrlPolicy | None = None,
    ) -> None:
        self._db = db
        self._vault = vault
        self._clock = clock
        self.brokers = brokers
        self.paper_cash = paper_cash
        self.commission_rate = commission_rate
        self.url_policy = url_policy or BrokerUrlPolicy()
        self._refs: dict[int, AccountRef] = {}
        self._resolved: dict[tuple[int, int | None], AccountRecord] = {}
        #: False while the server runs paused: accounts linked meanwhile open no broker
        #: session until ``attach_all`` on resume (the server sets it; see app.py).
        self.attaching = True
        #: Cluster mode: only the users this server owns get broker sessions here.
        self.owns: Callable[[int], bool] | None = None

    # --- creation

    async def create_paper_account(self, user: UserRecord) -> AccountRecord:
        now = self._clock.now()
        async with self._db.tx(Actor.user(user.id)) as conn:
            existing = await repo.paper_account(conn, user.id)
            if existing is not None:
                return existing
            acct = await repo.create_account(
                conn,
                user.id,
                broker="paper",
                env="paper",
                label="모의투자 (paper)",
                account_masked=f"PAPER-{user.id:04d}",
                fingerprint=f"paper:{user.id}",
                commission_rate=self.commission_rate,
                now=now,
            )
            await ledger.post_cash(
                conn, user.id, acct.id, self.paper_cash, "deposit", now, note="initial paper cash"
            )
        await self._attach(acct)
        return acct

    async def link(self, user_id: int, req: LinkRequest, *, ip: str | None) -> AccountRecord:
        broker, env = req.broker.lower(), req.env.lower()
        if broker not in ("kis", "kiwoom", "kiwoom_openapi"):
            raise InvalidInput(
                "broker must be kis, kiwoom or kiwoom_openapi (paper accounts are created for you)",
                "account.bad_broker",
                field="broker",
            )
        if env not in ENVS:
            raise InvalidInput("env must be real or mock", "account.bad_env", field="env")
        account_no = req.account_no.strip()
        if not _ACCOUNT_RE.fullmatch(account_no):
            raise InvalidInput(
                "계좌번호 형식이 올바르지 않습니다 (e.g. 50123456-01)",
                "account.bad_number",
                field="account_no",
            )
        if broker == "kiwoom_openapi":
            # OpenAPI+ through hoga-bridge: app_key is the Kiwoom login id the bridge logs in
            # as, app_secret the bridge's token, base_url the bridge (docs/kiwoom-openapi.md).
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", req.app_key.strip()):
                raise InvalidInput(
                    "app_key: the Kiwoom login id (1-32 letters or digits)",
                    "account.bad_app_key",
                    field="app_key",
                )
            if not req.base_url or not re.fullmatch(r"wss?://\S+", req.base_url):
                raise InvalidInput(
                    "base_url: the bridge's ws:// or wss:// address is required",
                    "account.bad_url",
                    field="base_url",
                )
        for name, value in (("app_key", req.app_key), ("app_secret", req.app_secret)):
            if broker == "kiwoom_openapi" and name == "app_key":
                continue
            if not _KEY_RE.fullmatch(value.strip()):
                raise InvalidInput(
                    f"{name}: 8-512 printable characters without spaces",
                    f"account.bad_{name}",
                    field=name,
                )
        if req.hts_id is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", req.hts_id):
            raise InvalidInput(
                "hts_id: 1-32 letters or digits", "account.bad_hts_id", field="hts_id"
            )
        # No calls to hosts the operator did not name (issue 12: SSRF).
        self.url_policy.check("base_url", req.base_url)
        self.url_policy.check("ws_url", req.ws_url)
        rate = req.commission_rate if req.commission_rate is not None else self.commission_rate
        if not Decimal(0) <= rate < Decimal("0.01"):
            raise InvalidInput(
                "commission_rate must be between 0 and 0.01",
                "account.bad_commission",
                field="commission_rate",
            )
        now = self._clock.now()
        secrets_doc = {
            "account_no": account_no,
            "app_key": req.app_key.strip(),
            "app_secret": req.app_secret.strip(),
            "hts_id": req.hts_id or "",
        }
        digits = account_no.replace("-", "")
        async with self._db.tx(Actor.user(user_id)) as conn:
            # The key the database names current (a rotation may have switched it).
            await keystate.use_current(self._vault, conn, now)
            acct = await repo.create_account(
                conn,
                user_id,
                broker=broker,
                env=env,
                label=(req.label or f"{broker.upper()} {'실전' if env == 'real' else '모의'}")[:64],
                account_masked=mask(digits),
                app_key_masked=mask(req.app_key.strip()),
                fingerprint=self._vault.fingerprint(str(user_id), broker, env, digits),
                commission_rate=rate,
                now=now,
                base_url=req.base_url,
                ws_url=req.ws_url,
                key_id=self._vault.current_key_id,
            )
            envelope = self._vault.encrypt_json(
                secrets_doc, account_aad(user_id, acct.id, broker, env)
            )
            await repo.update_account(conn, user_id, acct.id, secrets_enc=envelope)
            await audit.record(
                conn,
                action="account.link",
                now=now,
                user_id=user_id,
                ip=ip,
                target=f"account:{acct.id}",
                detail={"broker": broker, "env": env, "account": acct.account_masked},
            )
            acct = await repo.require_account(conn, user_id, acct.id)
        self._forget(user_id)
        await self._attach(acct)
        return acct

    # --- reading

    async def list_accounts(self, user_id: int) -> list[tuple[AccountRecord, int]]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            accts = await repo.list_accounts(conn, user_id)
            return [(a, await ledger.cash(conn, user_id, a.id)) for a in accts]

    async def get(self, user_id: int, account_id: int) -> AccountRecord:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await repo.require_account(conn, user_id, account_id)

    async def default_account(self, user_id: int) -> AccountRecord:
        async with self._db.tx(Actor.user(user_id)) as conn:
            acct = await repo.paper_account(conn, user_id)
            if acct is None:
                accts = await repo.list_accounts(conn, user_id)
                acct = accts[0] if accts else None
        if acct is None:
            raise NotFound("계좌가 없습니다 (no account)", "account.not_found")
        return acct

    async def resolve(self, user_id: int, account_id: int | None) -> AccountRecord:
        """The account an order goes to (the paper account when none is named), cached: the
        order path asks for it on every submit and accounts rarely change."""
        key = (user_id, account_id)
        acct = self._resolved.get(key)
        if acct is None:
            acct = await (
                self.default_account(user_id)
                if account_id is None
                else self.get(user_id, account_id)
            )
            self._resolved[key] = acct
        return acct

    def _forget(self, user_id: int) -> None:
        for key in [k for k in self._resolved if k[0] == user_id]:
            del self._resolved[key]

    def ref(self, acct: AccountRecord) -> AccountRef:
        """The adapter's view of an account, secrets decrypted (cached per account)."""
        cached = self._refs.get(acct.id)
        if cached is not None:
            return cached
        doc: dict[str, str] = {}
        if acct.secrets_enc:
            try:
                doc = self._vault.decrypt_json(
                    acct.secrets_enc, account_aad(acct.user_id, acct.id, acct.broker, acct.env)
                )
            except VaultError as e:
                raise ServiceUnavailable(
                    f"계좌 {acct.id}의 자격 증명을 열 수 없습니다: {e}", "vault.decrypt_failed"
                ) from None
        ref = AccountRef(
            account_id=acct.id,
            user_id=acct.user_id,
            broker=acct.broker,
            env=acct.env,
            account_no=doc.get("account_no", acct.account_masked),
            app_key=Secret(doc["app_key"]) if doc.get("app_key") else None,
            app_secret=Secret(doc["app_secret"]) if doc.get("app_secret") else None,
            hts_id=doc.get("hts_id") or None,
            base_url=self._permitted(acct, acct.base_url),
            ws_url=self._permitted(acct, acct.ws_url),
            commission_rate=acct.commission_rate,
        )
        self._refs[acct.id] = ref
        return ref

    def _permitted(self, acct: AccountRecord, url: str | None) -> str | None:
        """A stored custom URL the operator no longer allows is not called: the broker's own
        hosts are used instead (said in the log)."""
        if self.url_policy.permits(url):
            return url
        log.warning(
            "account %s: its custom broker URL is not allowed (HOGA_ALLOW_CUSTOM_BROKER_URLS / "
            "HOGA_BROKER_URL_HOSTS); using the broker's own hosts",
            acct.id,
        )
        return None

    async def ref_for(self, user_id: int, account_id: int) -> AccountRef:
        cached = self._refs.get(account_id)
        if cached is not None and cached.user_id == user_id:
            return cached
        return self.ref(await self.get(user_id, account_id))

    def broker_for(self, broker: str) -> Broker:
        b = self.brokers.get(broker)
        if b is None:
            raise ServiceUnavailable(
                f"{broker} 어댑터가 이 서버에 없습니다 (adapter not available)",
                "broker.unavailable",
            )
        return b

    # --- lifecycle

    async def _attach(self, acct: AccountRecord) -> None:
        broker = self.brokers.get(acct.broker)
        if broker is None or not self.attaching:
            return
        if self.owns is not None and not self.owns(acct.user_id):
            return  # cluster mode: the user's owner opens its sessions
        try:
            await broker.attach(self.ref(acct))
        except BrokerError as e:
            log.warning("could not attach account %s to %s: %s", acct.id, acct.broker, e.code)

    async def attach_all(self) -> list[AccountRecord]:
        self.attaching = True
        async with self._db.tx(SYSTEM) as conn:
            accts = await repo.all_active_accounts(conn)
        for acct in accts:
            await self._attach(acct)
        return accts

    async def user_accounts(self, user_id: int) -> list[AccountRecord]:
        """The user's active accounts (cluster mode: what an owner attaches and detaches)."""
        async with self._db.tx(Actor.user(user_id)) as conn:
            return [a for a in await repo.list_accounts(conn, user_id) if a.is_active]

    async def attach_account(self, acct: AccountRecord) -> None:
        """Open one account's broker session (cluster mode: its user's owner changed)."""
        await self._attach(acct)

    async def detach_account(self, acct: AccountRecord) -> None:
        """Close one account's broker session (cluster mode: another server owns it now)."""
        broker = self.brokers.get(acct.broker)
        if broker is None:
            return
        try:
            await broker.detach(acct.id)
        except BrokerError as e:
            log.warning("could not detach account %s from %s: %s", acct.id, acct.broker, e.code)

    async def test(self, user_id: int, account_id: int, *, ip: str | None) -> dict[str, Any]:
        acct = await self.get(user_id, account_id)
        broker = self.broker_for(acct.broker)
        ok, message, code = True, "", None
        opening: dict[str, Any] | None = None
        try:
            message = await broker.test_connection(self.ref(acct))
            if not acct.is_paper:
                opening = await self._adopt_opening_books(acct, broker)
        except BrokerError as e:
            ok, message, code = False, e.message, e.code
        now = self._clock.now()
        async with self._db.tx(Actor.user(user_id)) as conn:
            await repo.update_account(
                conn,
                user_id,
                account_id,
                last_test_at=now,
                last_test_ok=ok,
                last_test_message=message[:255],
            )
            await audit.record(
                conn,
                action="account.test",
                now=now,
                user_id=user_id,
                ip=ip,
                target=f"account:{account_id}",
                detail={"ok": ok, "code": code},
            )
        result: dict[str, Any] = {"ok": ok, "message": message, "code": code}
        if opening is not None:
            result["opening"] = opening
        return result

    async def _adopt_opening_books(
        self, acct: AccountRecord, broker: Broker
    ) -> dict[str, Any] | None:
        """On the first successful test of a real account, take the broker's orderable cash
        and holdings as the account's opening books (once: later differences are reported by
        reconciliation, never silently overwritten)."""
        from hoga.store import tables as t

        async with self._db.tx(Actor.user(acct.user_id)) as conn:
            booked = (
                await conn.execute(
                    t.cash_ledger.select()
                    .with_only_columns(t.cash_ledger.c.id)
                    .where(
                        t.cash_ledger.c.user_id == acct.user_id,
                        t.cash_ledger.c.account_id == acct.id,
                    )
                    .limit(1)
                )
            ).first()
        if booked is not None:
            return None
        ref = self.ref(acct)
        balance = await broker.balance(ref)
        holdings = balance.positions or await broker.position_reports(ref)
        now = self._clock.now()
        async with self._db.tx(Actor.user(acct.user_id)) as conn:
            await ledger.post_cash(
                conn,
                acct.user_id,
                acct.id,
                balance.orderable,
                "opening",
                now,
                note="broker orderable cash when the account was first tested",
            )
            for p in holdings:
                await ledger.save_position(
                    conn,
                    acct.user_id,
                    acct.id,
                    p.symbol,
                    Position(p.qty, p.qty * p.avg_price, 0),
                    now,
                )
            await audit.record(
                conn,
                action="account.opening_books",
                now=now,
                user_id=acct.user_id,
                target=f"account:{acct.id}",
                detail={"cash": balance.orderable, "positions": len(holdings)},
            )
        return {
            "cash": balance.orderable,
            "positions": [{"symbol": p.symbol, "qty": p.qty} for p in holdings],
        }

    async def remove(self, user_id: int, account_id: int, *, ip: str | None) -> None:
        acct = await self.get(user_id, account_id)
        if acct.is_paper:
            raise Conflict(
                "모의투자 계좌는 삭제할 수 없습니다 (the paper account stays)",
                "account.paper_is_permanent",
            )
        async with self._db.tx(Actor.user(user_id)) as conn:
            if await orders_repo.open_orders(conn, user_id=user_id, account_id=account_id):
                raise Conflict(
                    "미체결 주문이 있는 계좌는 삭제할 수 없습니다 (account has open orders)",
                    "account.has_open_orders",
                )
            await repo.update_account(
                conn,
                user_id,
                account_id,
                is_active=False,
                secrets_enc=None,
                updated_at=self._clock.now(),
            )
            await audit.record(
                conn,
                action="account.remove",
                now=self._clock.now(),
                user_id=user_id,
                ip=ip,
                target=f"account:{account_id}",
            )
        self._refs.pop(account_id, None)
        self._forget(user_id)
        broker = self.brokers.get(acct.broker)
        if broker is not None:
            await broker.detach(account_id)

    async def rotate_vault(self) -> int:
        """Re-encrypt every stored secret under the key the database names current; returns
        how many (``execution/vault_rotation.py`` runs the whole rotation)."""
        from hoga.security.vault import channel_aad, token_aad, totp_aad
        from hoga.store import tables as t

        n = 0
        async with self._db.tx(SYSTEM) as conn:
            await keystate.use_current(self._vault, conn, self._clock.now())
            rows = (await conn.execute(t.broker_accounts.select())).all()
            for r in rows:
                if not r.secrets_enc:
                    continue
                aad = account_aad(r.user_id, r.id, r.broker, r.env)
                doc = self._vault.decrypt_json(r.secrets_enc, aad)
                digits = doc.get("account_no", "").replace("-", "")
                await conn.execute(
                    t.broker_accounts.update()
                    .where(t.broker_accounts.c.id == r.id)
                    .values(
                        secrets_enc=self._vault.encrypt_json(doc, aad),
                        key_id=self._vault.current_key_id,
                        fingerprint=self._vault.fingerprint(
                            str(r.user_id), r.broker, r.env, digits
                        ),
                    )
                )
                n += 1
            for r in (await conn.execute(t.broker_tokens.select())).all():
                aad = token_aad(r.user_id, r.account_id, r.kind)
                plain = self._vault.decrypt(r.token_enc, aad)
                await conn.execute(
                    t.broker_tokens.update()
                    .where(t.broker_tokens.c.id == r.id)
                    .values(
                        token_enc=self._vault.encrypt(plain, aad), key_id=self._vault.current_key_id
                    )
                )
                n += 1
            for r in (
                await conn.execute(t.users.select().where(t.users.c.totp_secret_enc.is_not(None)))
            ).all():
                aad = totp_aad(r.id)
                plain = self._vault.decrypt(r.totp_secret_enc, aad)
                await conn.execute(
                    t.users.update()
                    .where(t.users.c.id == r.id)
                    .values(totp_secret_enc=self._vault.encrypt(plain, aad))
                )
                n += 1
            # Notification channel URLs (notify/store.py), bound to user and row like the rest.
            for r in (await conn.execute(t.notification_channels.select())).all():
                aad = channel_aad(r.user_id, r.id)
                plain = self._vault.decrypt(r.url_enc, aad)
                await conn.execute(
                    t.notification_channels.update()
                    .where(t.notification_channels.c.id == r.id)
                    .values(
                        url_enc=self._vault.encrypt(plain, aad), key_id=self._vault.current_key_id
                    )
                )
                n += 1
        self._refs.clear()
        return n


class VaultTokenStore:
    """Broker tokens in the ``broker_tokens`` table, encrypted with the vault and bound to
    their account (the server's implementation of ``brokers.base.TokenStore``)."""

    def __init__(self, db: Database, vault: Vault, clock: Clock) -> None:
        self._db = db
        self._vault = vault
        self._clock = clock

    async def _owner(self, account_id: int) -> int | None:
        from hoga.store import tables as t

        async with self._db.tx(SYSTEM) as conn:
            row = (
                await conn.execute(
                    t.broker_accounts.select()
                    .with_only_columns(t.broker_accounts.c.user_id)
                    .where(t.broker_accounts.c.id == account_id)
                )
            ).first()
        return int(row[0]) if row else None

    async def load(self, account_id: int, kind: str) -> tuple[str, float] | None:
        from hoga.security.vault import token_aad
        from hoga.store import tables as t

        user_id = await self._owner(account_id)
        if user_id is None:
            return None
        async with self._db.tx(Actor.user(user_id)) as conn:
            row = (
                await conn.execute(
                    t.broker_tokens.select().where(
                        t.broker_tokens.c.user_id == user_id,
                        t.broker_tokens.c.account_id == account_id,
                        t.broker_tokens.c.kind == kind,
                    )
                )
            ).first()
        if row is None:
            return None
        try:
            token = self._vault.decrypt(
                row.token_enc, token_aad(user_id, account_id, kind)
            ).decode()
        except VaultError:
            log.warning(
                "stored %s token of account %s does not decrypt; ignoring it", kind, account_id
            )
            return None
        return token, row.expires_at.timestamp()

    async def save(self, account_id: int, kind: str, token: str, expires_at: float) -> None:
        from datetime import datetime

        from hoga.domain.clock import KST
        from hoga.security.vault import token_aad
        from hoga.store import tables as t

        user_id = await self._owner(account_id)
        if user_id is None:
            return
        async with self._db.tx(Actor.user(user_id)) as conn:
            kid = await keystate.use_current(self._vault, conn, self._clock.now())
            values = {
                "token_enc": self._vault.encrypt(
                    token.encode(), token_aad(user_id, account_id, kind)
                ),
                "key_id": kid,
                "issued_at": self._clock.now(),
                "expires_at": datetime.fromtimestamp(expires_at, KST),
            }
            res = await conn.execute(
                t.broker_tokens.update()
                .where(
                    t.broker_tokens.c.user_id == user_id,
                    t.broker_tokens.c.account_id == account_id,
                    t.broker_tokens.c.kind == kind,
                )
                .values(**values)
            )
            if res.rowcount == 0:
                await conn.execute(
                    t.broker_tokens.insert().values(
                        user_id=user_id, account_id=account_id, kind=kind, **values
                    )
                )
