"""Deterministic, rule-based crisis detection for user utterances.

The detector is deliberately simple and auditable: pure-Python regular expressions applied to a
normalised form of the text (lower case, no apostrophes, no punctuation other than clause marks,
fillers and hedging adverbs removed, common contractions canonicalised). It is built for
speech-recognition output, so "dont", "don't" and "do not" all read the same.

Design rules:

* Patterns are specific ("kill myself", "want to die", "threatening me with a knife") rather than
  keyword based, so idioms such as "this deadline is killing me" never match in the first place.
  Idioms that do share a crisis phrase ("killing myself trying to finish this project",
  "burning myself out") are excluded by tight lookaheads on that single match only; every match in
  the text is examined, so a crisis phrase elsewhere in the same utterance still wins.
* Negation about the self ("I would never hurt myself", "I'm not suicidal") suppresses a match only
  when the negator governs the phrase, i.e. only auxiliaries and similar words lie between them
  ("I'm not sure I want to live anymore" and "I can't stop thinking about killing myself" still fire).
* When several categories match, the most urgent wins: immediate_danger, then suicidal_ideation,
  then self_harm.

False positives are cheap here (the mentor answers kindly with resources); false negatives are not,
so ambiguous wordings lean towards firing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CATEGORIES",
    "CrisisDetector",
    "SafetyVerdict",
]

IMMEDIATE_DANGER: Final = "immediate_danger"
SUICIDAL_IDEATION: Final = "suicidal_ideation"
SELF_HARM: Final = "self_harm"
#: Categories in priority order (most urgent first).
CATEGORIES: Final[tuple[str, ...]] = (IMMEDIATE_DANGER, SUICIDAL_IDEATION, SELF_HARM)


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    is_crisis: bool
    category: str | None  # "suicidal_ideation" | "self_harm" | "immediate_danger" | None
    matched: str | None  # the rule and phrase that fired, for logs


_NO_CRISIS: Final = SafetyVerdict(is_crisis=False, category=None, matched=None)

# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------

_APOSTROPHES: Final = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_HYPHENS: Final = re.compile(r"[-\u2010-\u2015_/]+")
_CLAUSE_MARKS: Final = re.compile(r"[.!?;:,()\[\]{}\"\u2026]+")
_OTHER_CHARS: Final = re.compile(r"[^a-z0-9| ]+")
_SPACES: Final = re.compile(r"\s+")
_PIPES: Final = re.compile(r"\|(?: ?\|)+")
# Fillers and hedging adverbs carry no meaning for detection and only get in the way of patterns.
_FILLERS: Final = re.compile(
    r"\b(?:u+m+|u+h+m*|e+r+m*|a+h+|h+m+|m+h*m+|you know|i mean|kind of|kinda|sort of|sorta|pretty much"
    r"|just|really|honestly|literally|actually|basically|seriously|totally|truly|even|like i said)\b"
)
_STUTTER: Final = re.compile(r"\b(\w+)(?: \1\b)+")
_CANONICAL: Final[dict[str, str]] = {
    "wanna": "want to",
    "gonna": "going to",
    "gotta": "got to",
    "tryna": "trying to",
    "cannot": "cant",
    "can not": "cant",
    "do not": "dont",
    "does not": "doesnt",
    "did not": "didnt",
    "will not": "wont",
    "would not": "wouldnt",
    "could not": "couldnt",
    "should not": "shouldnt",
    "is not": "isnt",
    "are not": "arent",
    "was not": "wasnt",
    "were not": "werent",
    "have not": "havent",
    "has not": "hasnt",
    "had not": "hadnt",
    "i am": "im",
    "i have": "ive",
    "i would": "id",
    "i had": "id",
    "i will": "ill",
    "he will": "hell",
    "she will": "shell",
    "they will": "theyll",
    "he would": "hed",
    "she would": "shed",
    "he is": "hes",
    "she is": "shes",
    "they are": "theyre",
    "it is": "its",
    "there is": "theres",
    "what is": "whats",
    "my self": "myself",
    "kms": "kill myself",
    "unalive": "kill",
    "unaliving": "killing",
}
_CANONICAL_RE: Final = re.compile(
    r"\b(?:" + "|".join(sorted((re.escape(k) for k in _CANONICAL), key=len, reverse=True)) + r")\b"
)


def _normalize(text: str) -> str:
    t = text.lower().translate(_APOSTROPHES).replace("'", "")
    t = _HYPHENS.sub(" ", t)
    t = _CLAUSE_MARKS.sub(" | ", t)
    t = _OTHER_CHARS.sub(" ", t)
    t = _SPACES.sub(" ", t)
    t = _FILLERS.sub(" ", t)
    t = _SPACES.sub(" ", t)
    t = _STUTTER.sub(r"\1", t)
    t = _CANONICAL_RE.sub(lambda m: _CANONICAL[m.group(0)], t)
    t = _PIPES.sub("|", t)
    return t.strip(" |")


# --------------------------------------------------------------------------------------------------
# Guards
# --------------------------------------------------------------------------------------------------

# A negator followed only by auxiliary-like words up to the start of the match.
_NEGATORS: Final = (
    r"not|never|dont|didnt|doesnt|wont|wouldnt|isnt|arent|aint|havent|hasnt|hadnt|shouldnt|nor"
    r"|no intention of|no intention to|no plans? (?:of|to)|no desire to|no way|no urge to"
)
_GAP_WORDS: Final = (
    r"ever|i|im|id|ill|ive|be|been|am|going|to|want|wanting|wanted|do|doing|anything|something|try"
    r"|trying|plan|planning|intend|intending|on|feel|feeling|like|would|will|could|should|think|thinking"
    r"|about|of|consider|considering|again|that|so|ready|got|have|having|had|has|need|needs"
)
_NEGATED: Final = re.compile(rf"(?:^|\s)(?:{_NEGATORS})(?:\s+(?:{_GAP_WORDS}))*\s*$")
_ACCIDENT: Final = re.compile(r"\b(?:by accident|accidentally|by mistake|unintentionally)\b")
_FIRST_PERSON: Final = frozenset({"i", "im", "ive", "id", "ill", "me", "myself", "we", "weve"})
_THIRD_PERSON: Final = frozenset(
    {
        "he", "she", "they", "hes", "shes", "theyre", "theyve", "his", "her", "their", "him", "them",
        "friend", "friends", "cousin", "brother", "sister", "mom", "mum", "dad", "mother", "father",
        "son", "daughter", "uncle", "aunt", "grandma", "grandpa", "classmate", "coworker", "colleague",
        "neighbor", "neighbour", "student", "character", "someone", "somebody", "guy", "girl", "man",
        "woman", "people", "kid", "boyfriend", "girlfriend", "husband", "wife", "partner", "roommate",
    }
)  # fmt: skip


# "I'm so embarrassed I want to die": hyperbole, for the want-to-die family of rules only.
_HYPERBOLE_PREFIX: Final = re.compile(
    r"\b(?:embarrass\w*|mortified|cringe\w*|awkward|humiliat\w*)(?: (?:i|im|that|and|so|it|was)){0,3} $"
)
_HYPERBOLE_GUARDED: Final = frozenset({"want_to_die"})


def _third_person_subject(prefix: str) -> bool:
    """True when the nearest subject-like word before the match refers to someone else."""
    for word in reversed(prefix.split()[-5:]):
        if word == "|":
            return False
        if word in _FIRST_PERSON:
            return False
        if word in _THIRD_PERSON:
            return True
    return False


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    name: str
    regex: re.Pattern[str]
    negatable: bool = True  # suppress when a negator governs the match
    accident_guard: bool = False  # suppress when the utterance says it was an accident
    third_person_veto: bool = False  # suppress when the subject is clearly someone else


_DRUGS: Final = (
    r"(?:pills|meds|medicine|medication|medications|tablets|capsules|painkillers|pain killers"
    r"|sleeping pills|sleeping tablets|tylenol|advil|ibuprofen|paracetamol|acetaminophen|aspirin|xanax"
    r"|benzos|valium|oxy|oxys|oxycodone|opioids|insulin|antidepressants|lithium|melatonin|vicodin"
    r"|percocet|ambien|seroquel|heroin|fentanyl)"
)
_WEAPON: Final = (
    r"(?:knife|knives|gun|guns|pistol|rifle|shotgun|machete|weapon|baseball bat|bat|hammer|axe|blade"
    r"|razor|broken bottle|screwdriver)"
)
_DET: Final = r"(?:a |an |his |her |their |the |my |some )?"
_PERSON: Final = (
    r"(?:he|she|they|hes|shes|theyre|someone|somebody|someones|somebodys|a (?:man|guy|woman|stranger)"
    r"|my (?:husband|hubby|wife|partner|spouse|boyfriend|girlfriend|bf|gf|dad|father|stepdad|stepfather"
    r"|step dad|mom|mum|mother|stepmom|stepmother|brother|sister|ex|ex husband|ex wife|ex boyfriend"
    r"|ex girlfriend|fiance|fiancee|roommate|uncle|aunt|son|daughter|landlord|parents?|grandpa"
    r"|grandfather|cousin|neighbou?r|boss|coach|teacher|pimp))"
)
_PLACE: Final = (
    r"(?:house|home|apartment|flat|room|bedroom|place|door|front door|window|building|dorm|trailer"
    r"|basement|garage|yard|porch)"
)
_INTENT: Final = (
    r"(?:want to|wanted to|going to|thinking (?:of|about)|thought (?:of|about)|think about"
    r"|planning (?:to|on)|plan (?:to|on)|tempted to|urges? to|considering|considered|might|could|should"
    r"|will|about to|keep imagining|imagine|imagining|fantasi[sz](?:e|ing) about|ready to|decided to"
    r"|wish i could|like to)"
)
_END_OF_CLAUSE: Final = r"(?= ?\||$)"

# "die my hair" (speech recognition for "dye") and embarrassment hyperbole ("... every time I see my ex").
_DIE_EXCLUSION: Final = (
    r"(?! (?:of|from|laughing|old)\b"
    r"| (?:my|her|his|their|it|the|this|these|those|some) (?:\w+ )?(?:hair|shirt|shirts|clothes|beard"
    r"|eyebrows|jeans|dress|fabric|eggs|shoes|tips|roots|bangs|wool|yarn|fur)\b"
    r"| (?:it )?(?:blue|red|pink|purple|black|green|blonde|brown|silver|white)\b"
    r"|(?: \w+)? (?:every time|whenever|when) (?:i|he|she|they|someone|people) (?:see|sees|saw|run into|bump"
    r" into|hear|hears|look at|watch|remember)\b)"
)

# Hyperbole such as "my mom will kill me if I'm late" or "... when she sees my grades".
_TRIVIAL_CONDITION: Final = (
    r"(?! (?:if|when) (?:i|we|were|you|youre|im) (?:was |were |am |are |get |got |come home |came home"
    r" |get home |got home )?(?:late|fail"
    r"|failed|flunk|flunked|dent|dented|spill|spilled|forget|forgot|lose|lost|miss|missed|mess up|messed up"
    r"|break|broke|crash|crashed|scratch|scratched|eat|ate|wear|wore|skip|skipped|borrow|borrowed|touch"
    r"|touched|use|used|take|took|drink|drank|open|opened|ruin|ruined|spoil|spoiled)\b"
    r"| when (?:she|he|they) (?:sees?|saw|finds? out about|found out about|hears? about|heard about)"
    r" (?:my|the|this|that|what)\b)"
)

# (category, name, pattern, negatable, accident_guard, third_person_veto)
_RULE_SPECS: Final[tuple[tuple[str, str, str, bool, bool, bool], ...]] = (
    # ---------------------------------------------------------------- immediate danger
    (IMMEDIATE_DANGER, "weapon_threat",
     rf"\bthreat(?:en|ens|ened|ening) (?:me|us|my (?:\w+ )?(?:kids?|children|family|son|daughter|baby"
     rf"|mom|mother|wife|husband)) with {_DET}{_WEAPON}\b", True, False, False),
    (IMMEDIATE_DANGER, "weapon_pointed",
     rf"\b(?:pointing|pointed|points|aiming|aimed|aims|holding|held|holds|pulled|pulls|waving|waved"
     rf"|swinging|swung|pressing|pressed) {_DET}{_WEAPON} (?:at|to|on|against|in front of|towards?)"
     rf" (?:me|my|us)\b", True, False, False),
    (IMMEDIATE_DANGER, "weapon_attack",
     rf"\b(?:coming at|came at|comes at|chasing|chased|attacking|attacked|lunged at|lunging at|went at"
     rf"|going at) (?:me|us) with {_DET}{_WEAPON}\b", True, False, False),
    (IMMEDIATE_DANGER, "stabbed_or_shot",
     r"\b(?:stabbed|stabbing|stabs|shot at|shooting at|shoots at|shot|shooting) (?:me|us)\b"
     r"(?! (?:a|an|the|some) \w+| down| up| off| a look)", True, False, False),
    (IMMEDIATE_DANGER, "armed_person_nearby",
     rf"\b(?:someone|somebody|a (?:man|guy|woman|person|stranger)|an intruder|people|men|he|she|they"
     rf"|my ex)\b(?: \w+){{0,4}} (?:with|has|holding|has got|got) (?:a |an )?{_WEAPON}\b(?: \w+){{0,4}}"
     rf" (?:outside|in|at|inside|near|by) (?:my|our|the) {_PLACE}\b", True, False, False),
    (IMMEDIATE_DANGER, "armed_person_nearby",
     rf"\b(?:someone|somebody|a (?:man|guy|woman|person|stranger)|an intruder|people|men|he|she|they"
     rf"|my ex)\b(?: \w+){{0,3}} (?:outside|in|at|inside|near|by) (?:my|our|the) {_PLACE}"
     rf" (?:with|holding) (?:a |an )?{_WEAPON}\b", True, False, False),
    (IMMEDIATE_DANGER, "threat_to_kill",
     r"\b(?:said|says|saying|told me|tells me|telling me|threatened|threatens|threatening|threaten"
     r"|swore|swears|keeps saying|warned me|texted me|texting me|messaged me|yelled|yelling|screamed"
     r"|screaming)(?: that)?(?: (?:he|she|they|hed|shed|theyd|hell|shell|theyll|hes|shes|theyre|will"
     r"|would|is|was|are|were|going|to)){0,4} (?:kill|murder|hurt|stab|shoot|strangle|choke|beat)"
     r" (?:me|us|my (?:\w+ )?(?:kids?|children|family|son|daughter|baby|babies|mom|mother|dad|wife"
     r"|husband|dog|cat))\b(?! (?:at|in) (?!my\b)\w+| up| to it| out)" + _TRIVIAL_CONDITION,
     True, False, False),
    (IMMEDIATE_DANGER, "threat_to_kill",
     r"\b(?:scared|afraid|terrified|worried|fear|think|sure|know) (?:that )?(?:he|she|they|hell|shell"
     r"|theyll|hes|shes|theyre|hed|shed|my \w+)(?: (?:will|would|is going to|s going to|going to|is|might"
     r"|could|wants to|is trying to))? (?:kill|hurt|murder|shoot|stab) (?:me|us|my kids|my children)\b"
     r"(?! (?:at|in) (?!my\b)\w+| up| to it| out)" + _TRIVIAL_CONDITION, True, False, False),
    (IMMEDIATE_DANGER, "armed_person_nearby",
     rf"\b(?:he|she|they|hes|shes|theyre|someone|someones|somebody|a (?:man|guy|woman|stranger)|my \w+)"
     rf"(?: is| s| are)? (?:outside|downstairs|upstairs|here|at (?:my|the|our) (?:door|window)|in (?:my|the"
     rf"|our) {_PLACE}) with {_DET}{_WEAPON}\b", True, False, False),
    (IMMEDIATE_DANGER, "weapon_attack",
     rf"\b(?:has|got|holding|with|grabbed|pulled out) {_DET}{_WEAPON}\b(?: \w+){{0,6}}? (?:coming at"
     rf"|coming after|chasing|pointing it at|threatening|attacking|going to (?:kill|hurt|stab|shoot))\b",
     True, False, False),
    (IMMEDIATE_DANGER, "being_attacked",
     rf"\b(?:is|s|hes|shes|theyre|are|keeps|keep) (?:trying|about|coming|going to try) to (?:kill|murder"
     rf"|stab|shoot|strangle|choke|hurt|rape) (?:me|us)\b(?! with (?!{_DET}{_WEAPON})| (?:at|in) \w+)",
     True, False, False),
    (IMMEDIATE_DANGER, "being_attacked",
     r"\b(?:tried|tries) to (?:strangle|choke|stab|shoot|drown|suffocate|smother) (?:me|us)\b",
     True, False, False),
    (IMMEDIATE_DANGER, "violence",
     rf"\b{_PERSON}s? (?:is |s |are |keeps |keep |has been |have been |was |were |just )?(?:hitting|beating"
     rf"|choking|strangling|punching|kicking|slapping|attacking|abusing|assaulting|raping|stabbing|hits"
     rf"|beats|chokes|strangles|punches|kicks|slaps|abuses|hit|beat|choked|strangled|punched|kicked"
     rf"|slapped|attacked|stabbed) (?:me|us)\b(?! (?:at|in) (?!the (?:face|head|stomach|chest|neck"
     rf"|back|ribs|eye|mouth))\w+| up| back| out| down| off| to it| with (?:the|a|that|this|his|her)"
     rf" (?:truth|fact|news|question|joke|idea|bill|homework|work|guilt|look|compliment|reality)"
     rf"| with (?:a|an|the|his|her|their|my|that|this|some) (?!(?:\w+ )?(?:belt|bat|baseball bat|hammer"
     rf"|bottle|pan|fist"
     rf"|fists|chair|stick|cord|cable|car|phone|shoe|boot|knife|gun|hand|hands|remote|lamp|plate|glass|rock"
     rf"|brick|pipe|bar|club|wrench|hanger|{_WEAPON})\b)\w+)",
     True, False, False),
    (IMMEDIATE_DANGER, "locked_in",
     rf"\b{_PERSON} (?:has |s |is |just )?locked me (?:in|inside) (?:the|a|my|his|her|this|their)\b",
     True, False, False),
    (IMMEDIATE_DANGER, "break_in",
     rf"\b(?:is|are|s|someones|somebodys|theyre|hes|shes|keeps|keep)(?: trying to| attempting to)?"
     rf" (?:break|breaking) in(?:to (?:my|our|the) {_PLACE})?\b(?! (?:the|my|new|these|those|a|his|her)"
     rf" \w+)", True, False, False),
    (IMMEDIATE_DANGER, "break_in",
     rf"\b(?:someone|somebody|someones|somebodys|a (?:man|guy|stranger|person|woman)|people|men|he|she"
     rf"|they|hes|shes|theyre|my ex)(?: is| s| are| keeps| keep)? (?:trying to|tried to|try to|is trying to)"
     rf" (?:get|force (?:their|his|her) way|break) (?:in|into (?:my|our|the) {_PLACE})\b(?! (?:the|my|new"
     rf"|these|those|a|his|her) \w+)", True, False, False),
    (IMMEDIATE_DANGER, "break_in",
     r"\b(?:trying to|try to|tried to|is|s|keeps|keep|about to|going to) (?:break|breaking|kick|kicking|bust"
     r"|busting|smash|smashing) (?:down )?(?:the|my|our|this) (?:\w+ )?(?:door|window)(?: down| in)?\b",
     True, False, False),
    (IMMEDIATE_DANGER, "restrained",
     r"\b(?:pinned|pinning|pins|held|holding|holds) me (?:down|against (?:the|a) (?:wall|door|floor|car"
     r"|ground"
     r"|bed))\b|\b(?:wont|doesnt|isnt going to|wouldnt) let me (?:leave|escape|get out)(?= ?\||$)"
     r"|\b(?:locked|trapped) me (?:in|inside) (?:the|a|my|his|her|their|this) (?:room|bathroom|closet"
     r"|basement"
     r"|house|car|garage|bedroom|apartment|cellar|shed|trunk|attic)\b",
     True, False, False),
    (IMMEDIATE_DANGER, "intruder",
     rf"\b(?:theres|there are|theyre|i hear|i can hear) (?:someone|somebody|a (?:man|guy|stranger"
     rf"|person|woman)|an intruder|people|men) (?:in|inside|downstairs in|upstairs in) (?:my|our|the)"
     rf" {_PLACE}\b", True, False, False),
    (IMMEDIATE_DANGER, "intruder",
     rf"\b(?:someone|somebody|a (?:man|guy|stranger|person)|people|men) (?:is |s |are )?(?:in|inside)"
     rf" (?:my|our|the) {_PLACE} (?:right now|now|as we speak)\b", True, False, False),
    (IMMEDIATE_DANGER, "intruder", r"\bintruders?\b(?! (?:alert|detection|game|system|alarm))",
     True, False, False),
    (IMMEDIATE_DANGER, "followed",
     r"\b(?:someone|somebody|a (?:man|guy|car|stranger|van|person|woman)|he|she|they|my ex)(?: \w+)?"
     r" (?:is |s |keeps |has been |are |been )?(?:following|stalking|chasing) (?:me|us) (?:home|right now"
     r"|now|and (?:im|i am|were) (?:scared|terrified|afraid))\b", True, False, False),
    (IMMEDIATE_DANGER, "overdose",
     r"\b(?:overdosed|overdosing|oded)\b(?! on (?:coffee|caffeine|sugar|candy|chocolate|netflix|tv"
     r"|anime|memes|carbs|junk food|energy drinks|cuteness|k ?dramas|dramas|cake|cookies|pizza|social"
     r" media|tiktok|gaming|video games|work|homework|studying|love|drama))", True, False, False),
    (IMMEDIATE_DANGER, "overdose", r"\b(?:took|taken|take|taking|had) an overdose\b", True, False, False),
    (IMMEDIATE_DANGER, "pills_taken",
     rf"\b(?:took|taken|take|taking|swallowed|swallow|swallowing|downed|ate|popped|chugged) (?:a |an |the"
     rf" |my )?(?:whole|entire|full) (?:bottle|box|pack|packet|strip|jar|container|tub|supply"
     rf"|prescription)s? (?:of )?(?:my |the |these |those |his |her )?(?:\w+ )?{_DRUGS}\b",
     True, False, False),
    (IMMEDIATE_DANGER, "pills_taken",
     rf"\b(?:took|taken|take|taking|swallowed|swallow|swallowing|downed|ate|popped) (?:all of|all|too many"
     rf"|way too many|a bunch of|a handful of|handfuls of|a lot of|lots of|loads of|dozens of|a ton of"
     rf"|tons of|so many|like \d+|\d{{2,}}|twenty|thirty|forty|fifty|sixty|a hundred|hundreds of"
     rf"|every one of|the rest of)(?: of)? (?:my |the |these |those |his |her |our )?(?:\w+ )?{_DRUGS}\b"
     rf"(?! (?:this morning|today|tonight|on time|like|as prescribed|for the (?:day|week)|with (?:breakfast"
     rf"|dinner|lunch|food|water)|every))", True, False, False),
    (IMMEDIATE_DANGER, "pills_taken",
     rf"\b(?:took|taken|swallowed|downed|popped|ate)(?: \w+){{0,6}} and (?:all|a bunch of|a handful of"
     rf"|too many"
     rf"|the rest of|a whole bottle of)(?: of)? (?:my |the )?(?:\w+ )?{_DRUGS}\b", True, False, False),
    (IMMEDIATE_DANGER, "poison",
     r"\b(?:drank|drunk|drink|drinking|swallowed|swallow|swallowing|ate|took) (?:some |a (?:bottle|cup"
     r"|glass|bunch) of |the )?(?:bleach|antifreeze|poison|rat poison|drain cleaner|pesticide|weed killer"
     r"|lye)\b", True, False, False),
    (IMMEDIATE_DANGER, "bleeding",
     r"\bcut (?:myself |my \w+ )?too deep\b|\b(?:cant|wont|unable to) stop (?:the |my \w+ (?:from )?)?"
     r"bleeding\b", True, False, False),
    (IMMEDIATE_DANGER, "bleeding",
     r"\b(?:im|i am) bleeding (?:a lot|badly|heavily|so much|everywhere|out|really bad)\b",
     True, False, False),
    (IMMEDIATE_DANGER, "fear_for_life",
     r"\b(?:scared|afraid|fear|fearing|terrified|fearful) for my (?:life|safety|kids safety"
     r"|childrens safety)\b", True, False, False),
    (IMMEDIATE_DANGER, "at_the_edge",
     r"\b(?:im|i am)(?: \w+){0,2} (?:on|at|on top of|at the edge of) (?:the|a|this|top of the|my)"
     r" (?:ledge|bridge|roof|rooftop|edge|balcony|railing|tracks|cliff|overpass|building)\b(?: \w+){0,8}?"
     r" (?:going to|want to|about to|ready to|will) (?:jump|let go|end it|do it)\b", True, False, False),
    # ---------------------------------------------------------------- suicidal ideation
    (SUICIDAL_IDEATION, "kill_myself",
     r"\bkill(?:ing|ed|s)? myself\b(?! (?:trying|working|studying|laughing|over (?:this|that|a|the|my"
     r"|nothing|it)|at (?:work|the gym|the office|my job|this job|practice|school)|to (?:finish|get|make"
     r"|meet|pass|keep|hit|please|impress|win)|for (?:this|that|a|the|my|nothing|them|him|her|it|work)"
     r"|with (?:work|overtime|homework|this (?:project|job|class|course|workload))))", True, True, False),
    (SUICIDAL_IDEATION, "end_my_life",
     r"\b(?:end|ending|ended|take|taking|took) my (?:own )?life\b", True, False, False),
    (SUICIDAL_IDEATION, "end_it_all",
     r"\bend(?:ing)? (?:it all|everything|all of it|my existence)\b(?! (?:with|between)\b)",
     True, False, False),
    (SUICIDAL_IDEATION, "end_it_all",
     r"\b(?:going to|want to|plan to|planning to|ready to|decided to|about to|will) end it"
     r" (?:tonight|today|now|soon|for good|once and for all|this week|this weekend|tomorrow)\b"
     r"(?! with\b)", True, False, False),
    (SUICIDAL_IDEATION, "want_it_to_end",
     r"\b(?:want|need) (?:it|everything|it all|this|all of this|the pain) to (?:stop|end|be over)"
     r" (?:forever|for good|permanently)\b|\b(?:dont want to|cant) do life(?: anymore| any more)?\b",
     True, False, False),
    (SUICIDAL_IDEATION, "end_it_all",
     r"\b(?:feel like|thinking (?:of|about)|thought about|think about|considering|want to|going to|ready to"
     r"|about to|decided to|planning to|plan to|might|should) end(?:ing)? it\b(?= ?\||$)",
     True, False, False),
    (SUICIDAL_IDEATION, "want_it_to_end",
     r"\bwant (?:it all|everything|all of (?:it|this)|my life|life) to (?:end|stop|be over)\b"
     r"(?! for (?:a|the) \w+)", True, False, False),
    (SUICIDAL_IDEATION, "want_to_die",
     r"\b(?:want|wanting|ready|deserve|deserved|wish to|longing|going to try) to die\b" + _DIE_EXCLUSION,
     True, False, False),
    (SUICIDAL_IDEATION, "want_to_die",
     r"\bwanted to die\b(?! (?:of|from|laughing|when|after|because)\b)", True, False, False),
    (SUICIDAL_IDEATION, "want_to_die",
     r"\bfeel(?:ing)? like dying\b" + _DIE_EXCLUSION, True, False, False),
    (SUICIDAL_IDEATION, "want_to_die",
     r"\b(?:wish i could|wish i would|hope i) die\b" + _DIE_EXCLUSION
     + r"|\b(?:might|may) as well (?:be dead|die)\b", True, False, False),
    (SUICIDAL_IDEATION, "want_to_die",
     r"\b(?:not|no longer) (?:afraid|scared) (?:of )?(?:dying|death|to die) (?:anymore|any more)\b"
     r"|\bhate (?:being alive|existing|that im (?:still )?alive|living)\b(?! (?:in|with|at|near|here|there"
     r"|paycheck|alone|so far|like|on|next|under|by)\b)|\bwant to be gone\b(?! (?:for|by|before|from|when|on"
     r"|at|till|until|in|after)\b)|\bwish i (?:was|were) gone\b"
     r"|\brather not (?:exist|be alive|live|wake up)\b"
     r"(?! (?:in|with|at|near|here|there|like that)\b)", True, False, False),
    (SUICIDAL_IDEATION, "want_to_die",
     r"\b(?:think|thinking|thought|dream|dreaming|fantasi[sz]e|fantasi[sz]ing) about (?:dying|being dead"
     r"|not being (?:here|alive|around)|not existing|not waking up|not living)\b"
     r"(?! (?:my|her|his|their|it|them|for|at|on|in|next|this|tomorrow|today|during|anymore)\b"
     r"| \w+ hair)", True, False, False),
    (SUICIDAL_IDEATION, "want_to_die",
     r"\b(?:wouldnt|dont|wont) (?:mind|care) if i (?:died|was dead|were dead|didnt wake up|never woke up"
     r"|got hit by|disappeared forever)\b|\bhope (?:that )?i (?:get|got) (?:hit by|run over|killed)\b"
     r"|\bif i (?:died|was gone|were gone|disappeared|killed myself|was dead)(?: \w+){0,2} (?:nobody|no one"
     r"|noone) (?:would|will) (?:care|notice|miss me)\b|\b(?:no way out|only way out|only option|only escape"
     r"|only solution)(?: \w+){0,3} (?:dying|death|to die|suicide|killing myself|ending it|ending my life)\b",
     False, False, False),
    (SUICIDAL_IDEATION, "kill_myself",
     rf"\b{_INTENT}(?: \w+){{0,2}}? off(?:ing)? myself\b|\b(?:want to|wish i could|should|need to) end me\b"
     rf"|\bthoughts (?:of|about) (?:suicide|killing myself|ending (?:my life|it all)|dying)\b",
     True, False, False),
    (SUICIDAL_IDEATION, "never_wake_up",
     r"\b(?:want to|wish i could|going to|wish to|hope to) (?:go to )?sleep (?:forever|and never wake up"
     r"|and not wake up)\b", True, False, False),
    (SUICIDAL_IDEATION, "overdose_intent",
     rf"\b{_INTENT}(?: \w+){{0,2}}? (?:overdose|od)\b(?! on (?:coffee|caffeine|sugar|candy|chocolate"
     rf"|netflix|tv|anime|memes|carbs|junk food|energy drinks|cuteness|cake|cookies|pizza))",
     True, False, False),
    (SUICIDAL_IDEATION, "why_live",
     r"\bwhy (?:should|would|do|does|must) i (?:keep living|stay alive|bother living|go on living|be alive"
     r"|keep existing|live|exist)\b(?! (?:in|with|at|near|here|there|like that)\b)"
     r"|\bwhy (?:should|would|do|must) i (?:keep going|go on)(?= ?\||$| anymore| any more)",
     False, False, False),
    (SUICIDAL_IDEATION, "wish_dead",
     r"\bwish (?:i )?(?:was|were|could be|would be|to be) dead\b|\bwant(?:ed)? to be dead\b"
     r"|\bbetter off dead\b|\brather be dead\b(?! than)", True, False, False),
    (SUICIDAL_IDEATION, "never_born",
     r"\bwish (?:i |id |i had )?(?:never|wasnt|werent|hadnt) (?:been )?(?:born|existed|exist)\b",
     True, False, False),
    (SUICIDAL_IDEATION, "stop_existing",
     r"\b(?:want to|wish i could|wish i would|going to|wish to) (?:stop existing|not exist|cease to exist"
     r"|disappear (?:forever|for good|permanently|and never come back))\b(?! (?:on|online|from (?:social"
     r"|the internet|instagram)|for (?:a|the) \w+))|\bwish i (?:didnt|did not) exist\b", True, False, False),
    (SUICIDAL_IDEATION, "suicidal",
     r"\bsuicidal\b(?! (?:friend|friends|patients?|clients?|character|people|person|teens?|behaviou?r"
     r" (?:research|in)))", True, False, False),
    (SUICIDAL_IDEATION, "suicide",
     r"\b(?:think|thinking|thinks|considering|consider|contemplating|contemplate|planning|plan|plans"
     r"|attempt|attempting|try|trying|commit|committing|going|want|wanting|researching|googling|googled"
     r"|fantasi[sz]ing|obsessing|obsessed)(?: about| of| to| on| with)? (?:committing |attempting )?"
     r"suicide\b(?! (?:prevention|awareness|rates?|statistics|stats|hotlines?|lines?|research|squad"
     r"|bomb\w*|mission|doors?|sprints?|drills?|runs?|watch|risk|in (?:the|a|my|this) (?:book|movie|show"
     r"|class|essay|paper|film|novel|article)))", True, False, False),
    (SUICIDAL_IDEATION, "suicide",
     r"\b(?:thought|attempted|tried|committed|considered|contemplated|planned)(?: about| of| to)?"
     r" (?:committing )?suicide\b(?! (?:prevention|awareness|rates?|statistics|squad|bomb\w*|mission))",
     True, False, True),
    (SUICIDAL_IDEATION, "suicide",
     r"\b(?:my|have a|got a|made a|making a|make a) suicide (?:note|letter|plan|attempt|pact)s?\b",
     True, False, True),
    (SUICIDAL_IDEATION, "suicide",
     r"\b(?:planning|planned|plan|plotting|preparing|prepared|researching|thinking about|thought about)"
     r" (?:my|a) suicide\b(?! (?:prevention|awareness|training|talk|presentation|research|essay|paper))",
     True, False, False),
    (SUICIDAL_IDEATION, "researching_methods",
     r"\b(?:ways|way|how|methods?) to (?:die|kill myself|end (?:my life|it all)|commit suicide|overdose)\b"
     r"(?! in (?:a|the|this|minecraft|\w+ game)\b)|\bhow (?:many|much) (?:\w+ ){0,2}(?:it takes |does it take"
     r" |would it take |would i need |do i need |to take )?to (?:die|kill (?:myself|me|a person|someone)"
     r"|overdose|od)\b", True, False, False),
    (SUICIDAL_IDEATION, "goodbye_letters",
     r"\b(?:goodbye|bye) (?:forever|for good|for the last time|cruel world)\b"
     r"|\bthis is (?:my )?(?:last|final)"
     r" (?:message|goodbye|text|time (?:talking|speaking) to you)\b(?! (?:before|for|until|of the)\b)"
     r"|\bthis is goodbye\b(?! (?:for now|until|see you|for today|for the (?:day|week|summer))\b)"
     r"|\bsay(?:ing)? (?:my )?(?:final |last )?goodbyes? to (?:everyone|everybody"
     r"|all of you|you all|the world|this world|my family)(?: tonight| forever| for good| now"
     r"| for the last time)?(?= ?\||$)", True, False, False),
    (SUICIDAL_IDEATION, "giving_things_away",
     r"\bgave away (?:all )?(?:of )?my (?:stuff|things|belongings|possessions)\b(?! to\b)"
     r"|\bgave away (?:all )?(?:of )?my \w+(?: \w+){0,3} (?:because|since|as) i (?:wont|dont) need\b",
     True, False, False),
    (SUICIDAL_IDEATION, "goodbye_letters",
     r"\b(?:letters?|notes?|messages?|texts?|videos?) (?:to (?:everyone|everybody|all|my \w+|them) )?"
     r"(?:saying|to say) (?:goodbye|bye|farewell)\b(?!(?: \w+){0,8} (?:because|since|as|before) (?:im"
     r"|were|i am|we are|i|we) (?:leaving|moving|retiring|changing|graduating|switching|quitting|left"
     r"|moved))", True, False, True),
    (SUICIDAL_IDEATION, "goodbye_letters",
     r"\b(?:wrote|written|writing|write|left|leave|leaving|drafted|drafting|finished|typed|typing|sent"
     r"|sending|send|recorded|recording) (?:a |my |some |the |all )?(?:goodbye|farewell|suicide)"
     r" (?:letters?|notes?|messages?|texts?|videos?)\b(?! (?:to|for) (?:my |the |our |all )?(?:team"
     r"|coworkers?|co workers?|colleagues?|class|classmates|students|boss|manager|company|clients?"
     r"|customers?|office|neighbou?rs?|tenants?|staff|department|group chat)\b)"
     r"(?!(?: \w+){0,8} (?:because|since|as) (?:im|were|i am|we are) (?:leaving|moving|retiring"
     r"|changing|graduating|switching|quitting))", True, False, True),
    (SUICIDAL_IDEATION, "better_off_without_me",
     r"\b(?:better off|happier|be fine|be okay|be ok|be better|be easier|easier for everyone|be relieved)"
     r" (?:without me|if i (?:was|were|wasnt|werent) (?:here|around|gone|dead|alive|never born)"
     r"|with me (?:gone|dead|out of the picture|not around|not here)"
     r"|if i (?:died|disappeared|was gone|were gone|never existed|killed myself|left this world))\b"
     r"(?! (?:on|in|at|for|during) (?:this|the|that|my|our|his|her)\b)", True, False, False),
    (SUICIDAL_IDEATION, "nobody_would_notice",
     r"\b(?:nobody|no one|noone) (?:would|will|wouldnt|is going to) (?:notice|care|miss me)"
     r"(?: if i (?:was|were|died|disappeared|left this world|killed myself|wasnt|werent|stopped existing"
     r"|vanished)| when im gone)\b", False, False, False),
    (SUICIDAL_IDEATION, "nobody_would_notice",
     rf"\b(?:nobody|no one|noone) (?:would|will) miss me{_END_OF_CLAUSE}", False, False, False),
    (SUICIDAL_IDEATION, "whats_the_point",
     r"\b(?:whats|what is|whats even) the point (?:of|in|to) (?:going on|carrying on|living|life|being alive"
     r"|staying alive|existing|it all|anything anymore|anything any more|trying anymore|being here"
     r"|waking up|any of it|keep going|keeping going|continuing|me being here|my life)\b"
     r"(?! (?:in|with|at|near|here|there|paycheck|insurance|coaching|hacks?|lessons?)\b)",
     False, False, False),
    (SUICIDAL_IDEATION, "whats_the_point",
     r"\b(?:no|dont see (?:the|any)|cant see (?:the|any)|see no|dont find (?:the|any)) point"
     r" (?:in |to |of )?(?:going on|carrying on|living|being alive|staying alive|existing|life"
     r"|waking up|my life|me being here)\b(?! (?:in|with|at|near|here|there|paycheck|insurance)\b)",
     False, False, False),
    (SUICIDAL_IDEATION, "no_reason_to_live",
     r"\bno (?:reasons?|will|desire|purpose) (?:left )?to (?:live|keep living|go on|stay alive|be alive"
     r"|keep going|exist|wake up)\b(?! (?:in|near|at|with|there|here|downtown|close|abroad|on|so|that|early"
     r"|late|before|for|in time"
     r"|this|like|paycheck)\b)|\bnothing (?:left )?to live for\b", False, False, False),
    (SUICIDAL_IDEATION, "dont_want_to_live",
     r"\b(?:dont|didnt|no longer|never|not sure|unsure|doubt|dont know|dont think)(?: (?:if|whether|that|i"
     r"|know|think|sure|feel like|anymore)){0,4} (?:want to|wish to|care to) (?:live|be alive|exist"
     r"|keep living|go on living|stay alive|be on this earth|be in this world|be on this planet|wake up)"
     r"\b(?! (?:in|with|at|near|on|by|there|here|alone|together|downtown|abroad|close|far|somewhere"
     r"|anywhere|paycheck|through|early|late|for|until|before|so|to|when|next|up|this|that|at)\b)",
     False, False, False),
    (SUICIDAL_IDEATION, "dont_want_to_live",
     r"\bwant to (?:live|be alive|keep living|keep going|go on|exist|be here|be around|wake up)"
     r" (?:anymore|any more|no more)\b", False, False, False),
    (SUICIDAL_IDEATION, "dont_want_to_live",
     rf"\b(?:dont|no longer|never|not sure i|dont know if i|dont think i) want to be (?:here|around)"
     rf"{_END_OF_CLAUSE}", False, False, False),
    (SUICIDAL_IDEATION, "never_wake_up",
     r"\b(?:sleep|fall asleep|go to sleep|go to bed|close my eyes|lie down) and (?:never|not|dont|wouldnt"
     r"|wont) (?:wake up|open them|get up)\b|\b(?:hope|hoping|wish|pray|praying) (?:that )?i (?:dont|wont"
     r"|never|wouldnt|didnt) wake up\b(?! (?:late|early|in time|on time|too|before|after|at|until|with"
     r"|during|sick|tired|hungover|sore|so|this|that)\b)|\bnever (?:want to )?wake up again\b",
     False, False, False),
    (SUICIDAL_IDEATION, "tired_of_living",
     r"\b(?:tired|sick|exhausted|weary) of (?:living|being alive|life|existing|being here)\b"
     r"(?! (?:paycheck|in|with|at|on|here|there|out|like that|as a)\b)", True, False, False),
    (SUICIDAL_IDEATION, "tired_of_living",
     r"\bdone (?:with )?(?:life|living|existing|being alive|this world)\b"
     r"(?! (?:in|with|at|here|there|like|paycheck|admin|insurance)\b)", True, False, False),
    (SUICIDAL_IDEATION, "life_not_worth_living",
     r"\b(?:life|living|my life|it) (?:isnt|is not|aint|wasnt|is no longer|not) worth (?:living|it anymore"
     r"|it any more)\b|\bnot worth living\b", False, False, False),
    (SUICIDAL_IDEATION, "cant_go_on",
     r"\b(?:cant|dont want to|dont know how to|unable to) (?:go on|keep going|carry on|keep living|live)"
     r" (?:anymore|any more)\b"
     r"|\b(?:cant|dont want to|unable to) (?:keep living|go on living|live) like this\b",
     False, False, False),
    (SUICIDAL_IDEATION, "cant_go_on",
     rf"\b(?:cant|dont want to|dont know how to|unable to) (?:go on|keep going|carry on|keep living)"
     rf"(?: living)?{_END_OF_CLAUSE}", False, False, False),
    (SUICIDAL_IDEATION, "cant_keep_safe",
     r"\b(?:cant|dont know if i can|not sure i can|not sure if i can|unable to) keep (?:myself|me) safe\b"
     r"|\bnot safe (?:from|with) myself\b|\bdont trust myself (?:tonight|right now|to stay safe|alone"
     r"|not to)\b", False, False, False),
    (SUICIDAL_IDEATION, "method",
     r"\b(?:gun|pistol|revolver|barrel) (?:to|against|in) my (?:head|mouth|temple|chin)\b"
     r"|\b(?:shoot|shooting|shot) myself\b(?! (?:in the foot|a (?:message|text|reminder|email)))"
     r"|\bput a bullet (?:in|through) my (?:head|brain)\b|\bblow my (?:brains|head) out\b"
     r"|\bhang(?:ing|ed|s)? myself\b|\b(?:tie|tied|tying|made|make|making|bought|buy|got) (?:a |the |my )?"
     r"noose\b|\bdrown(?:ing)? myself\b|\b(?:slit|slitting|slice|slicing|open|opening) (?:my |both )?"
     r"wrists?\b|\bthrow(?:ing)? myself (?:off|in front of|under|from)\b", True, False, False),
    (SUICIDAL_IDEATION, "method",
     rf"\b{_INTENT}(?: \w+){{0,2}}? (?:jump|jumping|leap|leaping|step|stepping|walk|walking|run|running"
     rf"|drive|driving|drive my car|driving my car|crash|crashing|crash my car|crashing my car) (?:off|from"
     rf"|in front of|into|under|onto|out of) (?:a |the |this |that |my |an |some )?(?:\w+ )?(?:bridge|roof"
     rf"|rooftop|building|cliff|balcony|window|overpass|train|tracks|tower|ledge|parking garage|traffic"
     rf"|bus|truck|highway|freeway|wall|tree)\b", True, False, False),
    (SUICIDAL_IDEATION, "method",
     r"\b(?:crash|crashing|crashed|wreck|wrecking|drive|driving|drove) (?:my car |the car )?(?:\w+ \w+ )?"
     r"on purpose\b", True, False, False),
    (SUICIDAL_IDEATION, "stockpiled_pills",
     rf"\b{_DRUGS} (?:saved|stashed|stockpiled|hidden|hoarded|set aside|lined up|counted out)\b"
     rf"|\b(?:saving|saved|stockpiling|stockpiled|hoarding|hoarded|collecting|collected|stashing|stashed"
     rf"|storing|stored|hiding|hid) (?:up )?(?:all )?(?:of )?(?:my |the |some |enough |a bunch of |a lot of"
     rf" |lots of |extra )?(?:sleeping |pain |prescription |anxiety |heart |old |extra |leftover )?{_DRUGS}\b"
     rf"|\benough (?:\w+ )?{_DRUGS} to (?:die|kill myself|end it|end my life|not wake up|overdose|do it"
     rf"|kill me)\b", True, False, False),
    # ---------------------------------------------------------------- self harm
    (SELF_HARM, "self_harm",
     r"\bself (?:harm|harming|harmed|harms|injury|injuring|injure|injured|mutilation|mutilating"
     r"|mutilate)\b(?! (?:awareness|prevention|research|training|polic(?:y|ies)|resources?|workshop"
     r"|module|class|course|essay|paper|statistics|in (?:teens|adolescents|young)))", True, False, True),
    (SELF_HARM, "cutting",
     r"\bcut(?:ting|s)? myself\b(?! (?:on|with) (?:a|the|some) (?!razor|blade|knife)\w+| shaving| cooking"
     r"| chopping| while| off| some slack| a break| short| out)", True, True, False),
    (SELF_HARM, "cutting",
     r"\b(?:been|started|start|starting|keep|kept|back to|relapsed|urges? to|want to|cant stop|still"
     r"|the urge to|going to|thinking about|think about|stop myself from) cutting\b(?= ?\||$| (?:again"
     r"|lately|myself|every|at night|more|deeper|when|because|since|and|but|my (?:arms?|wrists?|legs?"
     r"|thighs?|skin|stomach|hips?|body))\b)", True, False, False),
    (SELF_HARM, "cutting",
     r"\bcut(?:ting|s)? (?:into )?my (?:arms?|wrists?|legs?|thighs?|skin|stomach|hips?|body)\b"
     r"(?! (?:on|with) (?:a|the|some) (?!razor|blade|knife)\w+)", True, True, False),
    (SELF_HARM, "cutting",
     r"\burges? to (?:cut|self harm|hurt myself|burn myself)\b(?= ?\||$| (?:again|is|are|has|have|was"
     r"|were|tonight|today|so|myself|keeps?|getting|comes?|came)\b)", True, False, False),
    (SELF_HARM, "hurting_myself",
     r"\b(?:hurt|hurting|hurts|harm|harming|harmed|injure|injuring|injured) myself\b(?! (?:at|during|while"
     r"|playing|lifting|running|skiing|falling|in (?:the|a) (?:gym|game|match|fall|accident|crash)"
     r"|by (?!cutting"
     r"|burning|hitting|scratching|starving)\w+|on (?:the|a))\b)", True, True, False),
    (SELF_HARM, "burning_myself",
     r"\bburn(?:ing|ed|t|s)? myself\b(?! (?:on|with) (?:the|a|my|some|hot) (?:stove|oven|pan|pot|iron"
     r"|kettle|grill|toaster|stovetop|hot|coffee|tea|soup|water|curling iron|straightener|hair"
     r"|candle|steam|pizza|tray|baking|boiling)| (?:cooking|baking|ironing|making|out|while)\b)",
     True, True, False),
    (SELF_HARM, "hurting_myself",
     r"\b(?:hit|hitting|punch|punching|slap|slapping|bang|banging|bite|biting|scratch|scratching|scratched"
     r"|starve|starving|starved|bruise|bruising|choke|choking|strangle|strangling) myself\b(?! (?:on|against)"
     r" (?:the|a) \w+| in the (?:face|head) with (?:the|a) (?:door|ball|cabinet)| laughing| awake)",
     True, True, False),
    (SELF_HARM, "hurting_myself",
     r"\b(?:scratch|scratching|scratched|pick|picking|picked|hit|hitting|punch|punching|bite|biting|pull"
     r"|pulling|dig|digging) (?:at )?(?:my (?:own )?(?:skin|arms?|legs?|face|head|wrists?|thighs?|hands?"
     r"|hair|nails?)|myself) (?:until|till|til|so hard(?: that)?) (?:it|they|i) (?:bleeds?|bled|bruises?"
     r"|bruised)\b", True, False, False),
    (SELF_HARM, "hurting_myself",
     r"\b(?:cut|cutting|burn|burned|burnt|burning|hit|hitting|hurt|hurting|scratch|scratched|scratching"
     r"|bruise|bruised|punch|punched|starve|starved|starving) (?:my \w+|myself)(?: \w+){0,4} on purpose\b"
     r"|\bburn(?:ed|t|ing|s)? (?:my (?:arms?|legs?|skin|wrists?|hands?|thighs?|stomach)|myself)"
     r" with (?:a |my )?"
     r"(?:cigarettes?|lighter|match|matches|candle|hot (?:knife|metal|spoon|iron))\b"
     r"|\bmade (?:myself|my \w+) bleed\b|\b(?:feel pain|the pain|numb|feel something|punish myself)"
     r"(?: \w+){0,4} (?:so|and|then) i (?:cut|burn|hurt myself)\b"
     r"|\bi cut (?:myself )?(?:to feel|so i (?:can )?"
     r"feel|when im (?:sad|upset|angry|overwhelmed|numb|stressed|anxious))\b", True, False, False),
    (SELF_HARM, "hurting_myself",
     r"\bcarv(?:e|ing|ed) (?:words |things |letters )?(?:into |on )?(?:my )?(?:skin|arms?|legs?|wrists?"
     r"|thighs?|stomach|body)\b", True, False, False),
)  # fmt: skip


def _compile_rules() -> tuple[_Rule, ...]:
    return tuple(
        _Rule(cat, name, re.compile(pattern), neg, accident, third)
        for cat, name, pattern, neg, accident, third in _RULE_SPECS
    )


_BUILTIN_RULES: Final = _compile_rules()


# --------------------------------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------------------------------


class CrisisDetector:
    """Rule-based crisis detector. Thread-safe and stateless after construction.

    ``extra_patterns`` maps a category ("suicidal_ideation", "self_harm" or "immediate_danger") to
    additional regular expressions. They are matched (case-insensitively) against the normalised
    text: lower case, apostrophes removed ("dont", "im"), punctuation replaced by ``|``, fillers
    removed; negation is honoured as for built-in rules.
    """

    __slots__ = ("_rules",)

    def __init__(self, extra_patterns: dict[str, list[str]] | None = None) -> None:
        rules: list[_Rule] = list(_BUILTIN_RULES)
        for category, patterns in (extra_patterns or {}).items():
            if category not in CATEGORIES:
                raise ValueError(f"unknown crisis category {category!r}; expected one of {CATEGORIES}")
            for index, pattern in enumerate(patterns):
                try:
                    compiled = re.compile(pattern, re.IGNORECASE)
                except re.error as exc:
                    raise ValueError(f"invalid extra pattern for {category!r}: {pattern!r}: {exc}") from exc
                rules.append(_Rule(category, f"extra_{category}_{index}", compiled))
        rank = {category: i for i, category in enumerate(CATEGORIES)}
        rules.sort(key=lambda rule: rank[rule.category])  # stable: keeps order within a category
        self._rules: tuple[_Rule, ...] = tuple(rules)

    def check(self, text: str) -> SafetyVerdict:
        """Classify one utterance. Deterministic; empty or whitespace-only text is never a crisis."""
        if not text or text.isspace():
            return _NO_CRISIS
        norm = _normalize(text)
        if not norm:
            return _NO_CRISIS
        accidental: bool | None = None
        for rule in self._rules:
            for match in rule.regex.finditer(norm):
                prefix = norm[max(0, match.start() - 80) : match.start()]
                if rule.negatable and _NEGATED.search(prefix):
                    continue
                if rule.third_person_veto and _third_person_subject(prefix):
                    continue
                if rule.name in _HYPERBOLE_GUARDED and _HYPERBOLE_PREFIX.search(prefix):
                    continue
                if rule.accident_guard:
                    if accidental is None:
                        accidental = _ACCIDENT.search(norm) is not None
                    if accidental:
                        continue
                fired = f"{rule.name}: {match.group(0)}"
                return SafetyVerdict(is_crisis=True, category=rule.category, matched=fired)
        return _NO_CRISIS
