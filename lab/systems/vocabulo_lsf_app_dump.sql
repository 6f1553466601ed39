--
-- The Vocabulo lab's lsf_app_dump.sql: the database the document restores with
--   docker exec -i $(docker-compose ps -q postgres) psql -U $POSTGRES_USER -d $POSTGRES_DB < lsf_app_dump.sql
-- A small LSF (French Sign Language) dictionary: categories, words with a difficulty score
-- (the quiz's model input) and the quiz answers recorded so far.  Plain SQL, as pg_dump
-- --format=plain writes it.
--
SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

CREATE TABLE public.categorie (
    categorie_id integer PRIMARY KEY,
    nom text NOT NULL UNIQUE
);

CREATE TABLE public.mot (
    mot_id integer PRIMARY KEY,
    mot text NOT NULL UNIQUE,
    categorie_id integer NOT NULL REFERENCES public.categorie (categorie_id),
    difficulte real NOT NULL CHECK (difficulte BETWEEN 0 AND 1),
    url_video text
);

CREATE TABLE public.quiz_reponse (
    reponse_id serial PRIMARY KEY,
    mot_id integer NOT NULL REFERENCES public.mot (mot_id),
    correct boolean NOT NULL,
    repondu_le timestamp with time zone NOT NULL DEFAULT now()
);

COPY public.categorie (categorie_id, nom) FROM stdin;
1	animaux
2	nourriture
3	maison
4	école
\.

COPY public.mot (mot_id, mot, categorie_id, difficulte, url_video) FROM stdin;
1	chat	1	0.1	/videos/chat.mp4
2	chien	1	0.1	/videos/chien.mp4
3	cheval	1	0.4	/videos/cheval.mp4
4	pomme	2	0.2	/videos/pomme.mp4
5	pain	2	0.2	/videos/pain.mp4
6	fromage	2	0.5	/videos/fromage.mp4
7	table	3	0.3	/videos/table.mp4
8	fenêtre	3	0.6	/videos/fenetre.mp4
9	cahier	4	0.5	/videos/cahier.mp4
10	maîtresse	4	0.8	/videos/maitresse.mp4
11	mange	2	0.3	/videos/manger.mp4
12	le	4	0.9	\N
\.

COPY public.quiz_reponse (reponse_id, mot_id, correct) FROM stdin;
1	1	t
2	1	t
3	8	f
4	10	f
\.

SELECT pg_catalog.setval('public.quiz_reponse_reponse_id_seq', 4, true);
