"""Billing: taxes, concession types, billable items, products, and the invoices (with their items) that follow
attended and missed visits."""

from __future__ import annotations

import random

from cliniko2nutshell.sandbox import clinic_data as data
from cliniko2nutshell.sandbox.clinic_base import (
    BASE,
    DAY,
    _Business,
    _GeneratorBase,
    _link,
    _money,
    _PatientState,
    _percent,
    _Practitioner,
    _Product,
    _s,
    _t,
    _ts,
)

_STATUS = {10: "Open", 20: "Paid", 30: "Closed", 40: "Open credit"}


class _Billing(_GeneratorBase):
    """Money: the catalogue's prices and every invoice."""

    def _concession_types(self, at: int) -> list[tuple[str, str, str, int]]:
        out = []
        for name, pct in data.CONCESSION_TYPES:
            cid = self.mint(at)
            ts = _ts(at)
            body = (
                f'{{"id":"{cid}","created_at":"{ts}","updated_at":"{ts}","name":{_s(name)},'
                f'"links":{{"self":"{BASE}/concession_types/{cid}"}}}}'
            )
            self.sink.record("concession_types", cid, ts, ts, None, None, None, "{}", body)
            out.append((cid, _link(f"concession_types/{cid}"), name, pct))
        return out

    def _tax(self, name: str, rate: int, at: int) -> tuple[str, str, str, int]:
        tid = self.mint(at)
        ts = _ts(at)
        body = (
            f'{{"id":"{tid}","created_at":"{ts}","updated_at":"{ts}","name":{_s(name)},'
            f'"rate":{rate}.0,"amount":{rate}.0,"links":{{"self":"{BASE}/taxes/{tid}"}}}}'
        )
        self.sink.record("taxes", tid, ts, ts, None, None, None, "{}", body)
        return tid, _link(f"taxes/{tid}"), name, rate

    def _billable_item(self, name: str, kind: str, price: int, code: str, at: int) -> tuple[str, str, str, int, str]:
        bid = self.mint(at)
        ts = _ts(at)
        tax_id, tax_link = self.gst_free[0], self.gst_free[1]
        body = (
            f'{{"id":"{bid}","created_at":"{ts}","updated_at":"{ts}","archived_at":null,'
            f'"item_code":{_s(code)},"item_type":"{kind}","name":{_s(name)},"price":"{_money(price)}",'
            f'"tax":{tax_link},"links":{{"self":"{BASE}/billable_items/{bid}"}}}}'
        )
        self.sink.record("billable_items", bid, ts, ts, None, None, None, f'{{"tax_id":"{tax_id}"}}', body)
        return bid, _link(f"billable_items/{bid}"), name, price, code

    def _product(self, spec: tuple[str, int, int, str], at: int) -> _Product:
        name, price_incl, cost, code = spec
        rng = self.rng
        pid = self.mint(at)
        created = _ts(at)
        updated = _ts(at + rng.randint(0, 400) * DAY)
        price_ex = round(price_incl / 1.1)
        supplier = data.SUPPLIERS[len(name) % len(data.SUPPLIERS)]
        body = (
            f'{{"id":"{pid}","created_at":"{created}","updated_at":"{updated}","archived_at":null,'
            f'"name":{_s(name)},"item_code":"{code}","serial_number":null,"notes":null,'
            f'"cost_price":"{_money(cost)}","price_ex_tax":"{_money(price_ex)}",'
            f'"price_including_tax":"{_money(price_incl)}","stock_level":{rng.randint(-2, 60)},'
            f'"product_supplier_name":{_s(supplier)},"tax":{self.gst[1]},'
            f'"links":{{"self":"{BASE}/products/{pid}"}}}}'
        )
        self.sink.record("products", pid, created, updated, None, None, None, f'{{"tax_id":"{self.gst[0]}"}}', body)
        return _Product(pid, _link(f"products/{pid}"), name, price_ex, code)

    def _invoice_status(self, rng: random.Random, at: int, showcase: bool, st: _PatientState) -> int:
        if showcase:
            st.showcase_invoices += 1
            return (20, 10, 30, 40)[(st.showcase_invoices - 1) % 4]
        if at > self.ref - 14 * DAY:
            return rng.choice((10, 10, 20))
        u = rng.random()
        return 20 if u < 0.8 else 10 if u < 0.9 else 30 if u < 0.95 else 40

    def _invoice(
        self,
        st: _PatientState,
        status: int,
        lines: list[tuple[str, str, str, str, int, bool]],
        booking_id: str,
        prac: _Practitioner,
        business: _Business,
        at: int,
        with_product: bool,
    ) -> None:
        rng = self.rng
        ref = self.ref
        created = min(ref - 60, at + rng.randint(0, 1800))
        iid = self.mint(created)
        self.invoice_number += 1
        closed_at = None
        if status in (20, 30):
            closed_at = created + (rng.randint(0, 14) * DAY if status == 20 else rng.randint(30, 90) * DAY)
            if rng.random() < 0.6 and status == 20:
                closed_at = created + rng.randint(10, 600)  # paid at the desk
            if closed_at > ref - 60:
                closed_at = ref - 60
        updated = closed_at or created
        c_ts, u_ts = _ts(created), _ts(updated)
        items = list(lines)
        if with_product:
            p = self.products[rng.randrange(len(self.products))]
            items.append((p.id, p.link, p.name, p.code, p.price_ex, False))
        pct = st.concession[3] if st.concession else 0
        net_total = tax_total = disc_total = 0
        for item_id, item_link, name, code, unit, is_service in items:
            qty = 1 if is_service else rng.choice((1, 1, 2))
            gross = unit * qty
            discount = gross * pct // 100 if is_service else 0
            net = gross - discount
            rate = 0 if is_service else 10
            tax = net * rate // 100
            net_total += net
            tax_total += tax
            disc_total += discount
            line_id = self.mint(created)
            rel = "billable_item" if is_service else "product"
            body = (
                f'{{"id":"{line_id}","created_at":"{c_ts}","updated_at":"{c_ts}","name":{_s(name)},'
                f'"code":"{code}","quantity":{qty},"unit_price":"{_money(unit)}","net_price":"{_money(net)}",'
                f'"discount_percentage":{_percent(pct if is_service else 0)},"discounted_amount":"{_money(discount)}",'
                f'"is_monetary_discount":false,"tax_name":"{"GST-Free" if is_service else "GST"}",'
                f'"tax_rate":{rate}.0,"tax_amount":{_money(tax)},"total_including_tax":{_money(net + tax)},'
                f'"concession_type_name":{_s(st.concession[2] if st.concession and is_service else "")},'
                f'"archived_at":null,"deleted_at":null,"{rel}":{item_link},'
                f'"invoice":{_link(f"invoices/{iid}")},"links":{{"self":"{BASE}/invoice_items/{line_id}"}}}}'
            )
            fk = f'{{"invoice_id":"{iid}","{rel}_id":"{item_id}"}}'
            self.sink.record("invoice_items", line_id, c_ts, c_ts, None, None, None, fk, body)
        invoice_to = f"{st.insurer.name}\r\nRe: {st.label}" if st.insurer else st.label
        # Unconfirmed (reference §10): for a group class, whether invoice.appointment names the booking or the
        # attendee; we choose the booking (= the group appointment's id), like individual appointments.
        online_url = f'"https://{self.subdomain}.cliniko.com/pay/{iid}"' if status == 10 else "null"
        body = (
            f'{{"id":"{iid}","created_at":"{c_ts}","updated_at":"{u_ts}","number":{self.invoice_number},'
            f'"issue_date":"{business.zone.local_date(at)}","status":{status},"status_description":"{_STATUS[status]}",'
            f'"total_amount":"{_money(net_total + tax_total)}","net_amount":"{_money(net_total)}",'
            f'"tax_amount":"{_money(tax_total)}","discounted_amount":"{_money(disc_total)}","notes":"",'
            f'"invoice_to":{_s(invoice_to)},'
            f'"patient_extra_information":"","online_payment_url":{online_url},"closed_at":{_t(closed_at)},'
            f'"archived_at":null,"deleted_at":null,"appointment":{_link(f"appointments/{booking_id}")},'
            f'"business":{business.link},"practitioner":{prac.link},"patient":{st.plink},'
            f'"invoice_items":{{"links":{{"self":"{BASE}/invoices/{iid}/invoice_items"}}}},'
            f'"links":{{"self":"{BASE}/invoices/{iid}"}}}}'
        )
        fk = (
            f'{{"appointment_id":"{booking_id}","business_id":"{business.id}","practitioner_id":"{prac.id}",'
            f'"patient_id":"{st.pid}"}}'
        )
        self.sink.record("invoices", iid, c_ts, u_ts, None, None, None, fk, body)
        # the e-mails the clinic sent about it
        if st.email and (rng.random() < 0.1 or st.showcase_invoices == 1):
            self._email(st, created + 120, 3, "Invoice", f"Invoice {self.invoice_number}", iid, None)
        # A payment receipt links /payments/{id}: Cliniko has no payments endpoint, so the link leads nowhere.
        if st.email and status == 20 and closed_at and (rng.random() < 0.06 or st.showcase_invoices == 1):
            self._email(st, closed_at + 60, 14, "Payment Receipt", "Payment receipt", iid, self.mint(closed_at))
