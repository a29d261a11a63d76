"""A GRID-like command grammar in the nine MuAViC languages, with exact English translations.

A sentence is ``command colour preposition digit [digit] adverb`` (5 or 6
words), e.g. en "show blue under four nine again", es "muestra azul bajo
cuatro nueve nuevamente". Every slot word of every language is the
translation of the English slot word with the same index, and no word occurs
twice within a language's vocabulary, so the English translation of a
sentence is fixed by construction: the English words of the same slot
indices in the same order. The vocabulary is 39 words per language (8
commands, 8 colours, 5 prepositions, 10 digits, 8 adverbs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LANGUAGES = ("en", "ar", "de", "el", "es", "fr", "it", "pt", "ru")
X_TO_EN = ("el", "es", "fr", "it", "pt", "ru")
SLOTS = ("command", "colour", "preposition", "digit", "adverb")

# slot -> language -> words (index i of every language translates index i of "en")
VOCAB: dict[str, dict[str, tuple[str, ...]]] = {
    "command": {
        "en": ("place", "take", "move", "show", "open", "close", "find", "set"),
        "ar": ("ضع", "خذ", "حرك", "اعرض", "افتح", "أغلق", "جد", "اضبط"),
        "de": ("leg", "nimm", "beweg", "zeig", "öffne", "schließ", "finde", "stell"),
        "el": ("βάλε", "πάρε", "κούνα", "δείξε", "άνοιξε", "κλείσε", "βρες", "όρισε"),
        "es": ("pon", "toma", "mueve", "muestra", "abre", "cierra", "busca", "fija"),
        "fr": ("mets", "prends", "bouge", "montre", "ouvre", "ferme", "trouve", "règle"),
        "it": ("metti", "prendi", "muovi", "mostra", "apri", "chiudi", "trova", "imposta"),
        "pt": ("põe", "pega", "move", "mostra", "abre", "fecha", "encontra", "define"),
        "ru": ("положи", "возьми", "двигай", "покажи", "открой", "закрой", "найди", "установи"),
    },
    "colour": {
        "en": ("red", "blue", "green", "white", "black", "yellow", "grey", "brown"),
        "ar": ("أحمر", "أزرق", "أخضر", "أبيض", "أسود", "أصفر", "رمادي", "بني"),
        "de": ("rot", "blau", "grün", "weiß", "schwarz", "gelb", "grau", "braun"),
        "el": ("κόκκινο", "μπλε", "πράσινο", "άσπρο", "μαύρο", "κίτρινο", "γκρι", "καφέ"),
        "es": ("rojo", "azul", "verde", "blanco", "negro", "amarillo", "gris", "marrón"),
        "fr": ("rouge", "bleu", "vert", "blanc", "noir", "jaune", "gris", "brun"),
        "it": ("rosso", "blu", "verde", "bianco", "nero", "giallo", "grigio", "marrone"),
        "pt": ("vermelho", "azul", "verde", "branco", "preto", "amarelo", "cinza", "castanho"),
        "ru": ("красный", "синий", "зелёный", "белый", "чёрный", "жёлтый", "серый", "коричневый"),
    },
    "preposition": {
        "en": ("in", "on", "with", "under", "without"),
        "ar": ("في", "على", "مع", "تحت", "بدون"),
        "de": ("in", "auf", "mit", "unter", "ohne"),
        "el": ("μέσα", "πάνω", "με", "κάτω", "χωρίς"),
        "es": ("en", "sobre", "con", "bajo", "sin"),
        "fr": ("dans", "sur", "avec", "sous", "sans"),
        "it": ("in", "su", "con", "sotto", "senza"),
        "pt": ("em", "sobre", "com", "sob", "sem"),
        "ru": ("в", "на", "с", "под", "без"),
    },
    "digit": {
        "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
        "ar": ("صفر", "واحد", "اثنان", "ثلاثة", "أربعة", "خمسة", "ستة", "سبعة", "ثمانية", "تسعة"),
        "de": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
        "el": ("μηδέν", "ένα", "δύο", "τρία", "τέσσερα", "πέντε", "έξι", "επτά", "οκτώ", "εννέα"),
        "es": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"),
        "fr": ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"),
        "it": ("zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove"),
        "pt": ("zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove"),
        "ru": ("ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"),
    },
    "adverb": {
        "en": ("now", "again", "soon", "slowly", "quickly", "later", "here", "there"),
        "ar": ("الآن", "مجددا", "قريبا", "ببطء", "بسرعة", "لاحقا", "هنا", "هناك"),
        "de": ("jetzt", "wieder", "bald", "langsam", "schnell", "später", "hier", "dort"),
        "el": ("τώρα", "ξανά", "σύντομα", "αργά", "γρήγορα", "μετά", "εδώ", "εκεί"),
        "es": ("ahora", "nuevamente", "pronto", "despacio", "rápido", "luego", "aquí", "allí"),
        "fr": ("maintenant", "encore", "bientôt", "lentement", "vite", "après", "ici", "là"),
        "it": ("ora", "ancora", "presto", "piano", "veloce", "dopo", "qui", "lì"),
        "pt": ("agora", "novamente", "logo", "devagar", "depressa", "depois", "aqui", "ali"),
        "ru": ("сейчас", "снова", "скоро", "медленно", "быстро", "потом", "здесь", "там"),
    },
}


@dataclass(frozen=True)
class Sentence:
    lang: str
    words: tuple[str, ...]
    english: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def translation(self) -> str:
        """Exact English translation for X->En languages, else empty."""
        return " ".join(self.english) if self.lang in X_TO_EN else ""


def vocabulary(lang: str) -> list[str]:
    """Every word of ``lang`` (sorted, unique)."""
    return sorted({w for slot in SLOTS for w in VOCAB[slot][lang]})


def sample_sentence(lang: str, rng: np.random.Generator) -> Sentence:
    """One sentence of ``lang`` with its English counterpart (same slot indices)."""
    slots = ["command", "colour", "preposition", "digit"]
    if rng.random() < 0.5:
        slots.append("digit")
    slots.append("adverb")
    idx = [int(rng.integers(len(VOCAB[s]["en"]))) for s in slots]
    words = tuple(VOCAB[s][lang][i] for s, i in zip(slots, idx))
    english = tuple(VOCAB[s]["en"][i] for s, i in zip(slots, idx))
    return Sentence(lang, words, english)


def translate_to_english(lang: str, words: list[str] | tuple[str, ...]) -> list[str]:
    """Word-by-word English of a sentence of this grammar (KeyError for unknown words)."""
    table = {VOCAB[s][lang][i]: VOCAB[s]["en"][i] for s in SLOTS for i in range(len(VOCAB[s]["en"]))}
    return [table[w] for w in words]
