"""The Vocabulo ML services as the lab runs them: two FastAPI apps standing in for the
document's "Vocabulo Quiz Container" (word recommendations, difficulty prediction) and
"Vocabulo Junior Container" (OCR, CamemBERT and spaCy on a child's text), both using the
shared PostgreSQL database by its Compose service name (``DB_HOST``, default ``postgres``).

    uvicorn vocabulo_app:quiz_app --host 0.0.0.0 --port 8000      # the Quiz API
    uvicorn vocabulo_app:junior_app --host 0.0.0.0 --port 8000    # the Junior API

The models are stand-ins (a difficulty score stored with each word, a word tokenizer): what
the lab needs of them is that every documented route answers from the real database, so
golive's release family can call each one from the app's ``/openapi.json``.  Settings come
from the environment Compose gives the container (``POSTGRES_USER``, ``POSTGRES_PASSWORD``,
``POSTGRES_DB`` from ``.env``); the password is never logged.  Runs inside the lab's
``golive-lab/python`` image (Debian's fastapi, uvicorn and psycopg2).
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
from fastapi import FastAPI, HTTPException, Path, Query
from pydantic import BaseModel, Field

log = logging.getLogger("vocabulo")
VERSION = "1.0.0"


@contextmanager
def _db() -> Iterator[Any]:
    """One connection to the shared database, by its Compose service name."""
    try:
        conn = psycopg2.connect(host=os.environ.get("DB_HOST", "postgres"), port=int(os.environ.get("DB_PORT", "5432")),
                                dbname=os.environ["POSTGRES_DB"], user=os.environ["POSTGRES_USER"],
                                password=os.environ["POSTGRES_PASSWORD"], connect_timeout=3)
    except psycopg2.Error as exc:
        log.error("database connection failed: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
        raise HTTPException(status_code=503, detail="database unavailable") from None
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


class Health(BaseModel):
    status: str
    service: str
    database: str


class Word(BaseModel):
    mot_id: int
    mot: str
    categorie: str
    difficulte: float


def _health(service: str) -> Health:
    with _db() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    return Health(status="ok", service=service, database="ok")


def _word(cur: Any, word_id: int) -> Word:
    cur.execute("SELECT m.mot_id, m.mot, c.nom, m.difficulte FROM mot m JOIN categorie c USING (categorie_id) "
                "WHERE m.mot_id = %s", (word_id,))
    row = cur.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail=f"no word {word_id}")
    return Word(mot_id=row[0], mot=row[1], categorie=row[2], difficulte=row[3])


# ----------------------------------------------------------------------------- Quiz API

quiz_app = FastAPI(title="Vocabulo Quiz API", version=VERSION,
                   description="Word recommendations and difficulty prediction for the LSF vocabulary quiz")


class Answer(BaseModel):
    mot_id: int = Field(ge=1, example=1)
    correct: bool


class AnswerSaved(BaseModel):
    answer_id: int
    mot_id: int
    predicted_difficulty: float


@quiz_app.get("/health", response_model=Health)
def quiz_health() -> Health:
    return _health("quiz")


@quiz_app.get("/words", response_model=list[Word])
def quiz_words(limit: int = Query(10, ge=1, le=100)) -> list[Word]:
    with _db() as cur:
        cur.execute("SELECT m.mot_id, m.mot, c.nom, m.difficulte FROM mot m JOIN categorie c USING (categorie_id) "
                    "ORDER BY m.mot_id LIMIT %s", (limit,))
        return [Word(mot_id=r[0], mot=r[1], categorie=r[2], difficulte=r[3]) for r in cur.fetchall()]


@quiz_app.get("/words/{word_id}", response_model=Word)
def quiz_word(word_id: int = Path(ge=1, example=1)) -> Word:
    with _db() as cur:
        return _word(cur, word_id)


@quiz_app.get("/recommendations", response_model=list[Word])
def quiz_recommendations(level: float = Query(0.5, ge=0, le=1), limit: int = Query(5, ge=1, le=50)) -> list[Word]:
    """Words whose difficulty is nearest the learner's level (the recommender's stand-in)."""
    with _db() as cur:
        cur.execute("SELECT m.mot_id, m.mot, c.nom, m.difficulte FROM mot m JOIN categorie c USING (categorie_id) "
                    "ORDER BY abs(m.difficulte - %s), m.mot_id LIMIT %s", (level, limit))
        return [Word(mot_id=r[0], mot=r[1], categorie=r[2], difficulte=r[3]) for r in cur.fetchall()]


@quiz_app.post("/answers", response_model=AnswerSaved, status_code=201)
def quiz_answer(answer: Answer) -> AnswerSaved:
    """Record a quiz answer; the word's difficulty is re-predicted from every answer so far."""
    with _db() as cur:
        _word(cur, answer.mot_id)
        cur.execute("INSERT INTO quiz_reponse (mot_id, correct) VALUES (%s, %s) RETURNING reponse_id",
                    (answer.mot_id, answer.correct))
        answer_id = cur.fetchone()[0]
        cur.execute("SELECT 1 - avg(CASE WHEN correct THEN 1.0 ELSE 0.0 END) FROM quiz_reponse WHERE mot_id = %s",
                    (answer.mot_id,))
        predicted = float(cur.fetchone()[0])
    return AnswerSaved(answer_id=answer_id, mot_id=answer.mot_id, predicted_difficulty=round(predicted, 3))


# ----------------------------------------------------------------------------- Junior API

junior_app = FastAPI(title="Vocabulo Junior API", version=VERSION,
                     description="Reading help for children: the words of a text (OCR, CamemBERT and spaCy stand-in) "
                                 "found in the LSF dictionary")


class Text(BaseModel):
    text: str = Field(min_length=1, max_length=10000, example="le chat mange une pomme")


class Analysis(BaseModel):
    tokens: int
    known: list[Word]
    unknown: list[str]


@junior_app.get("/health", response_model=Health)
def junior_health() -> Health:
    return _health("junior")


@junior_app.get("/words/{word_id}", response_model=Word)
def junior_word(word_id: int = Path(ge=1, example=1)) -> Word:
    with _db() as cur:
        return _word(cur, word_id)


@junior_app.post("/analyse", response_model=Analysis)
def junior_analyse(body: Text) -> Analysis:
    """Split the text into words and look each up in the dictionary (read-only)."""
    tokens = [t.lower() for t in re.findall(r"[\w'-]+", body.text)]
    with _db() as cur:
        cur.execute("SELECT m.mot_id, m.mot, c.nom, m.difficulte FROM mot m JOIN categorie c USING (categorie_id) "
                    "WHERE m.mot = ANY(%s) ORDER BY m.mot_id", (sorted(set(tokens)),))
        known = [Word(mot_id=r[0], mot=r[1], categorie=r[2], difficulte=r[3]) for r in cur.fetchall()]
    found = {w.mot for w in known}
    return Analysis(tokens=len(tokens), known=known, unknown=sorted({t for t in tokens if t not in found}))
