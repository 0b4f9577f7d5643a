"""Operations whose outcome is unknown: look in Nutshell before anything is sent again.

A journal row still `intent` was cut off by a crash between its commit and its outcome; a row `unknown` ended
with a dropped connection. Each is settled here, before a run plans anything:
- creates are looked for by their marker: found, the record is adopted into the id map; not found, the row is
  void and the plan sends it again;
- updates, links and restores are read back: if Nutshell holds what we sent, the row is done, else void;
- uploads are looked for by file name on their activity;
- deletes are finished (a record still there is deleted now: nothing else would get back to it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from cliniko2nutshell.engine.destination import Destination, Entity, Gone, OutcomeUnknown, Remote
from cliniko2nutshell.engine.events import Recovered
from cliniko2nutshell.engine.fields import holds
from cliniko2nutshell.engine.journal import Action, Entry, Journal, MapWrite, Origin, State
from cliniko2nutshell.engine.markers import fingerprint
from cliniko2nutshell.events import EventSink, ignore

log = logging.getLogger(__name__)


def _map_write(entry: Entry, remote: Remote, origin: Origin, parent_id: str | None = None) -> MapWrite:
    return MapWrite(
        object=entry.object,
        source_id=entry.source_id,
        entity=entry.entity,
        nutshell_id=remote.id,
        payload_hash=entry.payload_hash or "",
        origin=origin,
        run_id=entry.run_id,
        parent_id=parent_id if parent_id is not None else entry.parent_id,
        patient_id=entry.patient_id,
        rev=remote.rev,
        modified=remote.modified,
        fingerprint=fingerprint(remote.fields),
    )


async def settle_open(journal: Journal, dest: Destination, sink: EventSink = ignore) -> int:
    """Settle every open row; returns how many were settled. Raises what the destination raises when
    Nutshell cannot be reached (the rows stay open for next time)."""
    settled = 0
    for entry in journal.open_entries():
        found = await settle(journal, dest, entry)
        settled += 1
        log.info(
            "recovered journal row %s (%s %s %s): found=%s",
            entry.seq,
            entry.action,
            entry.object,
            entry.source_id,
            found,
        )
        sink(Recovered(entry.run_id, entry.object, entry.source_id, found))
    return settled


async def settle(journal: Journal, dest: Destination, entry: Entry) -> bool:
    """Settle one open row. True when the write turned out to have happened (and is now recorded)."""
    entity = Entity(entry.entity)
    if entry.action is Action.CREATE:
        return await _settle_create(journal, dest, entry, entity)
    if entry.action is Action.UPLOAD:
        return await _settle_upload(journal, dest, entry)
    if entry.action is Action.DELETE:
        return await _settle_delete(journal, dest, entry, entity)
    if entry.action is Action.UNDELETE:
        remote = await dest.get(entity, entry.target_id or "")
        if remote is None:
            journal.settle(entry.seq, State.VOID, "not undeleted")
            return False
        journal.complete(
            entry.seq,
            nutshell_id=remote.id,
            rev=remote.rev,
            modified=remote.modified,
            map_to=_map_write(entry, remote, Origin.CREATED),
        )
        return True
    # link, update, restore: the target is known; did it get what we sent?
    remote = await dest.get(entity, entry.target_id or "")
    wanted = (entry.pre_image or {}).get("after" if entry.action is not Action.RESTORE else "before") or {}
    if remote is None or not holds(remote.fields, wanted):
        journal.settle(entry.seq, State.VOID, "not applied")
        return False
    restore_hash = (entry.pre_image or {}).get("restore_hash")
    if entry.action is Action.RESTORE and restore_hash:
        # an update undone: the record stays ours, back at its earlier write (a later run may redo it)
        earlier = dataclasses.replace(entry, payload_hash=restore_hash)
        journal.complete(
            entry.seq,
            nutshell_id=remote.id,
            rev=remote.rev,
            modified=remote.modified,
            fingerprint=fingerprint(remote.fields),
            map_to=_map_write(earlier, remote, _origin_of(journal, entry)),
        )
    elif entry.action is Action.RESTORE:
        journal.complete(
            entry.seq,
            nutshell_id=remote.id,
            rev=remote.rev,
            modified=remote.modified,
            unmap=(entry.object, entry.source_id, remote.id),
        )
    else:
        origin = Origin.LINKED if entry.action is Action.LINK else _origin_of(journal, entry)
        journal.complete(
            entry.seq,
            nutshell_id=remote.id,
            rev=remote.rev,
            modified=remote.modified,
            fingerprint=fingerprint(remote.fields),
            map_to=_map_write(entry, remote, origin),
        )
    return True


def _origin_of(journal: Journal, entry: Entry) -> Origin:
    current = journal.mapped(entry.object, entry.source_id)
    return current.origin if current is not None else Origin.CREATED


async def _settle_create(journal: Journal, dest: Destination, entry: Entry, entity: Entity) -> bool:
    lookup = entry.pre_image or {}
    found = await dest.find_marked(entity, entry.marker or entry.source_id, parent_id=entry.parent_id,
                                   email=lookup.get("lookup_email"), name=lookup.get("lookup_name"))  # fmt: skip
    # Our own earlier records carry the same marker only if they are this record: adopt the oldest copy. A
    # replacement's old note carries it too, and is not the one we are looking for.
    replaced = (entry.pre_image or {}).get("replaces")
    found = [r for r in found if r.id != replaced and not _mapped_elsewhere(journal, r.id, entry)]
    if not found:
        journal.settle(entry.seq, State.VOID, "not found in Nutshell")
        return False
    remote = min(found, key=lambda r: _number(r.id))
    journal.complete(
        entry.seq,
        nutshell_id=remote.id,
        rev=remote.rev,
        modified=remote.modified,
        fingerprint=fingerprint(remote.fields),
        map_to=_map_write(entry, remote, Origin.CREATED),
        clear_quarantine=(entry.object, entry.source_id),
    )
    replaced = (entry.pre_image or {}).get("replaces")
    if replaced:
        # A note replacement was cut off after its new note: finish it by deleting the old one.
        await delete_replaced(journal, dest, entry, replaced)
    return True


def _mapped_elsewhere(journal: Journal, nutshell_id: str, entry: Entry) -> bool:
    return any(
        (m.object, m.source_id) != (entry.object, entry.source_id) for m in journal.mapped_by_nutshell_id(nutshell_id)
    )


def _number(rest_id: str) -> int:
    head = rest_id.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


async def delete_replaced(journal: Journal, dest: Destination, entry: Entry, old_id: str) -> None:
    """Delete the note a replacement superseded (journaled, so a rollback can take it out of the trash)."""
    entity = Entity(entry.entity)
    old = await dest.get(entity, old_id)
    seq = journal.intent(
        entry.run_id,
        entry.object,
        entry.source_id,
        entity.value,
        Action.DELETE,
        target_id=old_id,
        parent_id=entry.parent_id,
        patient_id=entry.patient_id,
        payload_hash=(entry.pre_image or {}).get("old_hash"),
        pre_image={"fields": old.fields if old else None},
    )
    if old is not None:
        with contextlib.suppress(Gone):
            await dest.delete(entity, old_id, old.rev)
    journal.complete(seq, nutshell_id=old_id)


async def _settle_upload(journal: Journal, dest: Destination, entry: Entry) -> bool:
    host = entry.target_id or entry.parent_id or ""
    remote = await dest.find_file(host, entry.marker or "")
    if remote is None or not remote.fields.get("size"):
        journal.settle(entry.seq, State.VOID, "file not uploaded")
        return False
    journal.complete(
        entry.seq,
        nutshell_id=remote.id,
        rev=remote.rev,
        modified=remote.modified,
        map_to=_map_write(entry, remote, Origin.CREATED, parent_id=host),
        clear_quarantine=(entry.object, entry.source_id),
    )
    return True


async def _settle_delete(journal: Journal, dest: Destination, entry: Entry, entity: Entity) -> bool:
    target = entry.target_id or ""
    remote = await dest.get(entity, target)
    if remote is not None:
        try:
            await dest.delete(entity, target, remote.rev)
        except Gone:
            pass
        except OutcomeUnknown:
            journal.settle(entry.seq, State.UNKNOWN, "delete outcome unknown")
            raise
    journal.complete(entry.seq, nutshell_id=target, unmap=(entry.object, entry.source_id, target))
    return remote is None
