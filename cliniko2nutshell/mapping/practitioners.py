"""Practitioners to Nutshell users: exact e-mail first, then scored name suggestions.

Only an exact e-mail match (case and surrounding spaces ignored) is accepted automatically. Everything else is a
suggestion the user accepts, replaces, or sends to the fallback owner; a practitioner left unresolved blocks the
run and is listed for invitation to Nutshell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from cliniko2nutshell.mapping.model import MigrationMap, PractitionerChoice, PractitionerDecision
from cliniko2nutshell.mapping.names import name_tokens, normalize_email

SUGGEST_FLOOR = 50.0  # below this a candidate is not worth showing
EMAIL_SCORE = 100.0

# Common short forms of given names (both directions are checked).
_NICKNAMES: dict[str, tuple[str, ...]] = {
    "robert": ("bob", "bobby", "rob", "robbie", "bert"),
    "william": ("bill", "billy", "will", "liam", "willy"),
    "elizabeth": ("liz", "lizzie", "beth", "betty", "eliza", "libby", "elise"),
    "katherine": ("kate", "kathy", "katie", "kat", "kath"),
    "catherine": ("cathy", "kate", "cat", "cath", "katie"),
    "james": ("jim", "jimmy", "jamie"),
    "michael": ("mike", "mick", "mikey", "mich"),
    "christopher": ("chris", "kit", "topher"),
    "christine": ("chris", "chrissy", "tina"),
    "christina": ("chris", "tina", "chrissy"),
    "alexander": ("alex", "sasha", "xander", "sandy"),
    "alexandra": ("alex", "sasha", "lexi", "sandra"),
    "samuel": ("sam", "sammy"),
    "samantha": ("sam", "sammy"),
    "thomas": ("tom", "tommy"),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davy"),
    "stephen": ("steve", "stevie"),
    "steven": ("steve", "stevie"),
    "jennifer": ("jen", "jenny", "jenn"),
    "nicholas": ("nick", "nicky", "nico"),
    "matthew": ("matt", "matty"),
    "andrew": ("andy", "drew"),
    "anthony": ("tony", "ant"),
    "benjamin": ("ben", "benny", "benji"),
    "peter": ("pete",),
    "joseph": ("joe", "joey"),
    "susan": ("sue", "suzy", "susie"),
    "margaret": ("maggie", "meg", "peggy", "marge", "greta"),
    "richard": ("rick", "ricky", "dick", "rich", "richie"),
    "edward": ("ed", "eddie", "ted", "ned"),
    "henry": ("harry", "hank", "hal"),
    "john": ("jack", "johnny", "jon"),
    "jonathan": ("jon", "jonny", "nathan"),
    "rebecca": ("becky", "becca", "bec"),
    "jessica": ("jess", "jessie"),
    "abigail": ("abby", "abi", "gail"),
    "nathan": ("nate",),
    "nathaniel": ("nate", "nat"),
    "patrick": ("pat", "paddy"),
    "patricia": ("pat", "patty", "trish", "tricia"),
    "frederick": ("fred", "freddie"),
    "gregory": ("greg",),
    "josephine": ("jo", "josie"),
    "joanne": ("jo",),
    "timothy": ("tim", "timmy"),
    "victoria": ("vicky", "tori", "vic"),
    "alison": ("ally", "ali"),
    "amanda": ("mandy", "manda"),
    "deborah": ("debbie", "deb"),
    "charles": ("charlie", "chuck", "chas"),
    "charlotte": ("charlie", "lottie"),
    "francesca": ("fran", "frankie"),
    "frances": ("fran", "frankie"),
    "francis": ("frank", "frankie"),
    "jacqueline": ("jackie", "jacqui"),
    "kimberly": ("kim",),
    "lawrence": ("larry", "laurie"),
    "leonard": ("len", "lenny", "leo"),
    "philip": ("phil",),
    "phillip": ("phil",),
    "raymond": ("ray",),
    "ronald": ("ron", "ronnie"),
    "douglas": ("doug",),
    "gerald": ("gerry",),
    "kenneth": ("ken", "kenny"),
    "zachary": ("zach", "zack"),
    "isabella": ("bella", "izzy", "isa"),
    "isabel": ("izzy", "bel", "isa"),
    "gabriel": ("gabe",),
    "gabrielle": ("gabby", "elle"),
    "eleanor": ("ellie", "nell", "nora"),
    "madeleine": ("maddie", "maddy"),
    "penelope": ("penny",),
    "theodore": ("theo", "ted", "teddy"),
    "vincent": ("vince", "vinnie"),
    "mohammed": ("mohamed", "muhammad", "mohammad", "mo"),
    "aleksandr": ("sasha", "alex"),
    "yekaterina": ("katya", "kate"),
}


def _nickname_index() -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for full, shorts in _NICKNAMES.items():
        group = {full, *shorts}
        for name in group:
            index.setdefault(name, set()).update(group - {name})
    return index


_NICK = _nickname_index()


@dataclass(frozen=True, slots=True)
class PractitionerInfo:
    """What matching needs of a Cliniko practitioner (and the e-mail of its Cliniko user)."""

    id: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    display_name: str | None = None
    label: str | None = None
    email: str | None = None
    active: bool = True

    @property
    def full_name(self) -> str:
        parts = [p for p in (self.first_name, self.last_name) if p and p.strip()]
        return " ".join(parts) or (self.display_name or self.label or f"Practitioner {self.id}")


@dataclass(frozen=True, slots=True)
class NutshellUser:
    id: str
    name: str
    emails: tuple[str, ...] = ()
    first_name: str | None = None
    last_name: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Suggestion:
    user_id: str
    score: float  # 0-100; 100 only for an exact e-mail match
    reason: str


@dataclass(frozen=True, slots=True)
class PractitionerMatch:
    practitioner: PractitionerInfo
    suggestions: tuple[Suggestion, ...] = field(default_factory=tuple)
    email_match: str | None = None  # the user id matched by exact e-mail: the only automatic acceptance

    @property
    def inactive(self) -> bool:
        return not self.practitioner.active

    @property
    def top(self) -> Suggestion | None:
        return self.suggestions[0] if self.suggestions else None


# -- scoring --------------------------------------------------------------------------------------------------


def _given_variants(tokens: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for t in tokens:
        out.add(t)
        out |= _NICK.get(t, set())
    return out


def _token_sim(a: str, b: str) -> float:
    """How alike two folded name tokens are, 0-1, allowing initials and short forms."""
    if a == b:
        return 1.0
    if len(a) == 1 or len(b) == 1:
        return 0.8 if a[0] == b[0] else 0.0
    if b in _NICK.get(a, ()):
        return 0.9
    if len(a) >= 3 and len(b) >= 3 and (a.startswith(b) or b.startswith(a)):
        return 0.85
    r = fuzz.ratio(a, b) / 100.0
    return r if r >= 0.75 else r * 0.5


def _best(tokens: Iterable[str], pool: Iterable[str]) -> tuple[float, str | None]:
    best, which = 0.0, None
    pool = list(pool)
    for t in tokens:
        for p in pool:
            s = _token_sim(t, p)
            if s > best:
                best, which = s, p
    return best, which


def _joined_match(joined: str, tokens: list[str]) -> set[str] | None:
    """The run of consecutive `tokens` that spells `joined` (particles and prefixes written apart), if any."""
    for i in range(len(tokens)):
        for j in range(i + 1, len(tokens) + 1):
            if "".join(tokens[i:j]) == joined:
                return set(tokens[i:j])
    return None


def _user_name_tokens(user: NutshellUser) -> list[str]:
    if user.first_name or user.last_name:
        return name_tokens(f"{user.first_name or ''} {user.last_name or ''}")
    return name_tokens(user.name)


def _email_local_tokens(email: str) -> list[str]:
    local = normalize_email(email).split("@", 1)[0]
    return name_tokens(local.replace("_", " ").replace(".", " ").replace("-", " "))


def name_score(p: PractitionerInfo, user: NutshellUser) -> tuple[float, str]:
    """A 0-99 score of how likely `user` is practitioner `p` by name alone, with a short reason."""
    surnames = name_tokens(p.last_name)
    givens = name_tokens(p.first_name)
    for extra in (p.display_name, p.label):
        # Display names often hold the preferred given name ("Dr Jenny Smith"): keep its non-surname words.
        givens += [t for t in name_tokens(extra) if t not in surnames]
    if not surnames and not givens:
        return 0.0, "the practitioner has no name"
    utoks = _user_name_tokens(user)
    if not utoks:
        return 0.0, "the user has no name"

    # Surname: every part found scores 1; one part of a double-barrelled name 0.85; else fuzzy.
    if surnames:
        found = [_best([s], utoks) for s in surnames]
        sims = [f[0] for f in found]
        used = {f[1] for f in found if f[0] >= 0.75}
        if all(s >= 0.99 for s in sims):
            sur = 1.0
        elif (joined := _joined_match("".join(surnames), utoks)) is not None:
            sur, used = 1.0, joined  # "van der Berg" ~ "Vanderberg", "Mc Donald" ~ "McDonald"
        elif any(s >= 0.99 for s in sims):
            sur = 0.85
        else:
            sur = max(sims) * 0.9
    else:
        sur, used = 0.5, set()
    rest = [t for t in utoks if t not in used] or utoks
    if givens:
        g, _ = _best(_given_variants(givens), rest)
        if g < 0.75:
            # An initial or short form on the practitioner side against a full name on the user side.
            g = max(g, _best(givens, rest)[0])
    else:
        g = 0.5
    # Users named with more given names than we know (middle names) are fine; unknown extra words cost a little.
    extra_words = max(0, len(rest) - max(1, len(givens)))
    # Names alone top out at 93, so the e-mail tie-breaker below can still separate two namesakes.
    score = 93.0 * (0.55 * sur + 0.45 * g) - 3.0 * extra_words
    # Given names of ours the user lacks ("Min-jun" vs "Min") separate namesakes; a small cost, since a
    # middle name recorded only in Cliniko is common.
    missing = [t for t in name_tokens(p.first_name) if not any(_token_sim(t, r) >= 0.75 for r in rest)]
    score -= 2.0 * len(missing)
    reasons = []
    reasons.append(
        "surname matches"
        if sur >= 0.99
        else ("part of the surname matches" if sur >= 0.85 else f"surname {round(sur * 100)}% alike")
    )
    reasons.append("given name matches" if g >= 0.99 else (f"given name {round(g * 100)}% alike"))

    # The e-mail's local part often spells the name (jane.doe@other-domain): a tie-breaker, never an acceptance.
    if p.email and user.emails:
        plocal = normalize_email(p.email).split("@", 1)[0]
        if any(normalize_email(e).split("@", 1)[0] == plocal for e in user.emails):
            score += 6.0
            reasons.append("same e-mail name at another domain")
        elif surnames and any(any(s in t for s in surnames) for e in user.emails for t in _email_local_tokens(e)):
            score += 2.0
    if not user.enabled:
        score -= 5.0
        reasons.append("user is disabled")
    return max(0.0, min(99.0, score)), "; ".join(reasons)


def match_practitioner(p: PractitionerInfo, users: Iterable[NutshellUser]) -> PractitionerMatch:
    users = list(users)
    email = normalize_email(p.email)
    if email:
        for u in users:
            if any(normalize_email(e) == email for e in u.emails):
                sugg = Suggestion(u.id, EMAIL_SCORE, "same e-mail address")
                others = _name_suggestions(p, [x for x in users if x.id != u.id])
                return PractitionerMatch(p, (sugg, *others), email_match=u.id)
    return PractitionerMatch(p, tuple(_name_suggestions(p, users)))


def _name_suggestions(p: PractitionerInfo, users: list[NutshellUser]) -> list[Suggestion]:
    scored = []
    for u in users:
        score, reason = name_score(p, u)
        if score >= SUGGEST_FLOOR:
            scored.append(Suggestion(u.id, round(score, 1), reason))
    scored.sort(key=lambda s: (-s.score, s.user_id))
    return scored


def match_practitioners(
    practitioners: Iterable[PractitionerInfo], users: Iterable[NutshellUser]
) -> list[PractitionerMatch]:
    users = list(users)
    return [match_practitioner(p, users) for p in practitioners]


# -- decisions in the map ---------------------------------------------------------------------------------------


def propose_choices(
    matches: Iterable[PractitionerMatch], existing: Mapping[str, PractitionerChoice] | None = None
) -> dict[str, PractitionerChoice]:
    """Map entries: keep the user's own decisions; accept e-mail matches; everything else stays unresolved."""
    existing = existing or {}
    out: dict[str, PractitionerChoice] = {}
    for m in matches:
        pid = m.practitioner.id
        label = m.practitioner.full_name
        kept = existing.get(pid)
        if kept is not None and (kept.method in ("manual", "name") or kept.decision is PractitionerDecision.FALLBACK):
            out[pid] = kept.model_copy(update={"label": label})
        elif m.email_match is not None:
            out[pid] = PractitionerChoice(
                decision=PractitionerDecision.MATCHED,
                user=m.email_match,
                method="email",
                score=EMAIL_SCORE,
                label=label,
            )
        else:
            top = m.top
            out[pid] = PractitionerChoice(
                decision=PractitionerDecision.UNRESOLVED,
                method="",
                score=top.score if top else 0.0,
                label=label,
                suggestion=top.user_id if top else None,
                suggestion_reason=top.reason if top else "",
            )
    return out


def accept_suggestions(mapping: MigrationMap) -> MigrationMap:
    """Accept every shown name suggestion of an unresolved practitioner (the user's explicit "accept all")."""
    m = mapping
    for pid, choice in mapping.practitioners.items():
        if choice.decision is PractitionerDecision.UNRESOLVED and choice.suggestion:
            m = accept(m, pid, choice.suggestion, method="name")
    return m


def fallback_unresolved(mapping: MigrationMap, fallback_user_id: str) -> MigrationMap:
    """Send every practitioner still unresolved to `fallback_user_id`."""
    m = mapping.model_copy(update={"fallback_owner": fallback_user_id})
    for pid, choice in mapping.practitioners.items():
        if choice.decision is PractitionerDecision.UNRESOLVED:
            m = send_to_fallback(m, pid, fallback_user_id)
    return m


def accept(mapping: MigrationMap, practitioner_id: str, user_id: str, *, method: str = "manual") -> MigrationMap:
    """The user accepted `user_id` for a practitioner (a suggestion: method "name"; picked by hand: "manual")."""
    choices = dict(mapping.practitioners)
    prev = choices.get(practitioner_id, PractitionerChoice())
    choices[practitioner_id] = PractitionerChoice(
        decision=PractitionerDecision.MATCHED,
        user=user_id,
        method=method,
        score=prev.score,
        label=prev.label,  # type: ignore[arg-type]
    )
    return mapping.model_copy(update={"practitioners": choices})


def send_to_fallback(mapping: MigrationMap, practitioner_id: str, fallback_user_id: str | None = None) -> MigrationMap:
    owner = fallback_user_id or mapping.fallback_owner
    if owner is None:
        raise ValueError("choose a fallback owner (a Nutshell user) first")
    choices = dict(mapping.practitioners)
    prev = choices.get(practitioner_id, PractitionerChoice())
    choices[practitioner_id] = PractitionerChoice(
        decision=PractitionerDecision.FALLBACK, method="manual", score=prev.score, label=prev.label
    )
    return mapping.model_copy(update={"practitioners": choices, "fallback_owner": owner})


def unresolved(mapping: MigrationMap, practitioner_ids: Iterable[str] | None = None) -> list[str]:
    """Practitioners that block the run: unresolved, or missing from the map altogether."""
    ids = list(practitioner_ids) if practitioner_ids is not None else list(mapping.practitioners)
    out = []
    for pid in ids:
        choice = mapping.practitioners.get(pid)
        if choice is None or mapping.owner_for(pid) is None:
            out.append(pid)
    return out


def find_user(users: Iterable[NutshellUser], text: str) -> NutshellUser | None:
    """The Nutshell user named by `text`: its id ("5-users", or "5") or one of its e-mails (any case, spaces
    around ignored)."""
    wanted = text.strip()
    if not wanted:
        return None
    users = list(users)
    key = wanted if "-" in wanted or not wanted.isdigit() else f"{wanted}-users"
    by_id = next((u for u in users if u.id == key), None)
    if by_id is not None or "@" not in wanted:
        return by_id
    email = normalize_email(wanted)
    return next((u for u in users if any(normalize_email(e) == email for e in u.emails)), None)


def user_label(user: NutshellUser | None, user_id: str | None = None) -> str:
    """A user as a person recognises them: "Jane Doe <jane@clinic.example> (5-users)"."""
    if user is None:
        return user_id or "?"
    email = next((e.strip() for e in user.emails if e.strip()), "")
    name = user.name.strip() or "(no name)"
    return f"{name} <{email}> ({user.id})" if email else f"{name} ({user.id})"
