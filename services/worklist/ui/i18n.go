package ui

import (
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
)

const langCookie = "passerelle_lang"

// language picks the page's language: ?lang= (remembered in a cookie), the
// cookie, then Accept-Language; French by default.
func language(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "fr" || l == "en" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "fr" || c.Value == "en") {
		return c.Value
	}
	return acceptLanguage(r.Header.Get("Accept-Language"))
}

// acceptLanguage returns "en" when English is preferred over French in an
// Accept-Language header, "fr" otherwise.
func acceptLanguage(h string) string {
	best, bestQ := "fr", -1.0
	for _, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if (base == "fr" || base == "en") && q > bestQ {
			best, bestQ = base, q
		}
	}
	return best
}

func translate(lang, key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if lang == "en" {
		return m[1]
	}
	return m[0]
}

var funcs = template.FuncMap{
	"date":     func(t time.Time) string { return formatDate(t) },
	"datetime": func(t time.Time) string { return formatDateTime(t) },
	"isodate":  func(t time.Time) string { return t.In(clock.Paris).Format("2006-01-02") },
	"num":      formatNumber,
	"list":     func(v ...any) []any { return v },
	"shortdt":  func(t time.Time) string { return t.In(clock.Paris).Format("02/01 15:04") },
	"has":      func(l []string, s string) bool { return slices.Contains(l, s) },
	// pct writes a proportion as a percentage with two decimals, the
	// French way (5,26 %).
	"pct": func(f float64) string {
		return strings.Replace(strconv.FormatFloat(f*100, 'f', 2, 64), ".", ",", 1) + " %"
	},
}

// formatDate writes dd/mm/yyyy in Europe/Paris; the zero time is "—".
func formatDate(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(clock.Paris).Format("02/01/2006")
}

// formatDateTime writes dd/mm/yyyy HH:MM in Europe/Paris.
func formatDateTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(clock.Paris).Format("02/01/2006 15:04")
}

// formatNumber writes a decimal with a comma in French.
func formatNumber(lang string, f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if lang != "en" {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s
}

// messages holds every text of the pages: French, English.
var messages = map[string][2]string{
	"skip":                    {"Aller au contenu", "Skip to content"},
	"my_tasks":                {"Mes tâches", "My tasks"},
	"alerts":                  {"Alertes", "Alerts"},
	"coordination":            {"Coordination", "Coordination"},
	"directory":               {"Annuaire", "Directory"},
	"outcomes":                {"Résultats", "Outcomes"},
	"period_start":            {"Sorties du", "Discharges from"},
	"period_end":              {"au", "to"},
	"baseline":                {"Référence avant le parcours", "Baseline before the pathway"},
	"measure":                 {"Indicateur", "Measure"},
	"baseline_num":            {"Événements", "Events"},
	"baseline_den":            {"Patients", "Patients"},
	"show":                    {"Afficher", "Show"},
	"measures_caption":        {"Indicateurs de la CPTS (chiffres non masqués, réservés à la CPTS), intervalle de confiance de Wilson à 95 %", "The CPTS's measures (unmasked, for the CPTS only), Wilson 95% confidence interval"},
	"numerator":               {"Numérateur", "Numerator"},
	"comparison":              {"Avant / après", "Before / after"},
	"before":                  {"Avant", "Before"},
	"after":                   {"Avec le parcours", "With the pathway"},
	"cmp_evidence":            {"Les intervalles ne se chevauchent pas : l'écart dépasse ce que le hasard explique à ce niveau.", "The intervals do not overlap: the difference is more than chance at this level."},
	"cmp_no_evidence":         {"Les intervalles se chevauchent : l'écart peut encore tenir au hasard.", "The intervals overlap: the difference may still be chance."},
	"templates":               {"Parcours", "Pathways"},
	"discharge":               {"Déclarer une sortie", "Declare a discharge"},
	"logout":                  {"Se déconnecter", "Log out"},
	"login":                   {"Se connecter", "Log in"},
	"main_nav":                {"Navigation principale", "Main navigation"},
	"language":                {"Langue", "Language"},
	"home_intro":              {"Coordination des parcours ville-hôpital de la CPTS.", "Hospital-to-home care pathways of the CPTS."},
	"error":                   {"Erreur", "Error"},
	"err_login":               {"Connectez-vous pour continuer.", "Please log in to continue."},
	"err_form":                {"Formulaire illisible.", "The form cannot be read."},
	"err_csrf":                {"Formulaire expiré ou d'une autre origine : rechargez la page et recommencez.", "The form has expired or comes from elsewhere: reload the page and try again."},
	"err_internal":            {"Erreur interne du serveur.", "Internal server error."},
	"err_forbidden":           {"Cette page est réservée à la coordination de la CPTS.", "This page is for the CPTS's coordination only."},
	"err_unavailable":         {"Ce service n'est pas disponible sur cette instance.", "This service is not available on this instance."},
	"err_action":              {"Action inconnue : choisissez accepter, refuser, commencer, terminer ou échouer.", "Unknown action: choose accept, decline, start, complete or fail."},
	"err_version":             {"Version de la tâche illisible.", "Unreadable task version."},
	"err_number":              {"Valeur numérique invalide pour « %s ».", "Invalid number for \"%s\"."},
	"err_range":               {"Valeur hors des limites plausibles pour « %s ».", "Value out of the plausible range for \"%s\"."},
	"err_empty_visit":         {"Saisissez au moins une mesure, des symptômes ou une note.", "Enter at least one measurement, symptoms or a note."},
	"err_no_member":           {"Choisissez le professionnel à qui confier la tâche.", "Choose the professional to give the task to."},
	"err_required":            {"Champ obligatoire : « %s ».", "Required field: \"%s\"."},
	"err_date":                {"Date invalide pour « %s » (jj/mm/aaaa).", "Invalid date for \"%s\" (dd/mm/yyyy)."},
	"done_accept":             {"Tâche acceptée.", "Task accepted."},
	"done_decline":            {"Tâche refusée.", "Task declined."},
	"done_start":              {"Tâche commencée.", "Task started."},
	"done_complete":           {"Tâche terminée.", "Task completed."},
	"done_fail":               {"Tâche marquée en échec.", "Task marked as failed."},
	"done_visit":              {"Visite enregistrée.", "Visit recorded."},
	"done_visit_alert":        {"Alerte transmise à %[2]s : %[1]s", "Alert sent to %[2]s: %[1]s"},
	"done_ack":                {"Alerte prise en compte.", "Alert acknowledged."},
	"done_reassign":           {"Tâche réassignée.", "Task reassigned."},
	"done_discharge":          {"Sortie transmise à la CPTS.", "Discharge sent to the CPTS."},
	"no_tasks":                {"Aucune tâche en cours.", "No open task."},
	"due":                     {"Échéance", "Due"},
	"overdue":                 {"En retard", "Overdue"},
	"patient":                 {"Patient", "Patient"},
	"born":                    {"né(e) le", "born"},
	"status":                  {"Statut", "Status"},
	"open":                    {"Ouvrir", "Open"},
	"page":                    {"Page", "Page"},
	"prev":                    {"Page précédente", "Previous page"},
	"next":                    {"Page suivante", "Next page"},
	"tasks_count":             {"tâches en cours", "open tasks"},
	"live_new":                {"Liste mise à jour.", "List updated."},
	"reload":                  {"Actualiser", "Reload"},
	"act_accept":              {"Accepter", "Accept"},
	"act_decline":             {"Refuser", "Decline"},
	"act_start":               {"Commencer", "Start"},
	"act_complete":            {"Terminer", "Complete"},
	"act_fail":                {"Échec", "Failed"},
	"reason":                  {"Motif", "Reason"},
	"st_requested":            {"À accepter", "To accept"},
	"st_accepted":             {"Acceptée", "Accepted"},
	"st_in-progress":          {"En cours", "In progress"},
	"st_completed":            {"Terminée", "Completed"},
	"st_failed":               {"Échec", "Failed"},
	"st_rejected":             {"Refusée", "Declined"},
	"st_cancelled":            {"Annulée", "Cancelled"},
	"st_missed":               {"Manquée : sortie signalée après l'échéance", "Missed: discharge notified after the window"},
	"st_on-hold":              {"Suspendue", "On hold"},
	"st_ready":                {"Prête", "Ready"},
	"task":                    {"Tâche", "Task"},
	"summary":                 {"Résumé du patient", "Patient summary"},
	"birth_date":              {"Date de naissance", "Birth date"},
	"address":                 {"Adresse", "Address"},
	"phone":                   {"Téléphone", "Phone"},
	"email":                   {"Courriel", "E-mail"},
	"diagnosis":               {"Diagnostic", "Diagnosis"},
	"no_diagnosis":            {"Aucun diagnostic transmis.", "No diagnosis sent."},
	"episode":                 {"Épisode", "Episode"},
	"discharged":              {"Sortie le", "Discharged on"},
	"letter":                  {"Lettre de liaison", "Discharge letter"},
	"no_letter":               {"Aucune lettre de liaison reçue.", "No discharge letter received."},
	"download":                {"Télécharger", "Download"},
	"team":                    {"Équipe de soins", "Care team"},
	"no_team":                 {"Équipe non encore constituée.", "Team not formed yet."},
	"role_gp":                 {"Médecin traitant", "GP"},
	"role_nurse":              {"Infirmier(e)", "Nurse"},
	"role_pharmacist":         {"Pharmacien(ne)", "Pharmacist"},
	"role_cardiologist":       {"Cardiologue", "Cardiologist"},
	"role_coordinating-nurse": {"IDE coordinatrice référente", "Referent coordinating nurse"},
	"role_coordinator":        {"Coordination CPTS", "CPTS coordinator"},
	"role_admin":              {"Administration", "Administrator"},
	"role_external":           {"Professionnel déclaré (hors CPTS)", "Declared professional (outside the CPTS)"},
	"role_":                   {"—", "—"},
	"weight":                  {"Courbe de poids", "Weight curve"},
	"weight_none":             {"Aucun poids enregistré.", "No weight recorded."},
	"weight_desc":             {"Poids en kg par date ; la ligne pointillée rouge est le seuil d'alerte (+%s kg sur %d jours).", "Weight in kg by date; the dashed red line is the alert threshold (+%s kg over %d days)."},
	"weight_table":            {"Valeurs", "Values"},
	"threshold":               {"Seuil", "Threshold"},
	"visit":                   {"Saisir la visite", "Record the visit"},
	"weight_kg":               {"Poids (kg)", "Weight (kg)"},
	"systolic":                {"Pression systolique (mmHg)", "Systolic pressure (mmHg)"},
	"diastolic":               {"Pression diastolique (mmHg)", "Diastolic pressure (mmHg)"},
	"heart_rate":              {"Fréquence cardiaque (/min)", "Heart rate (/min)"},
	"nyha":                    {"Classe NYHA", "NYHA class"},
	"nyha_none":               {"Non évaluée", "Not assessed"},
	"not_recorded":            {"Non renseigné", "Not recorded"},
	"oedema":                  {"Œdèmes", "Oedema"},
	"breathlessness":          {"Essoufflement", "Breathlessness"},
	"sev_absent":              {"Absents", "Absent"},
	"sev_present":             {"Présents", "Present"},
	"sev_mild":                {"Légers", "Mild"},
	"sev_moderate":            {"Modérés", "Moderate"},
	"sev_severe":              {"Sévères", "Severe"},
	"symptoms":                {"Autres symptômes (fatigue, toux…)", "Other symptoms (fatigue, cough…)"},
	"note":                    {"Note", "Note"},
	"save":                    {"Enregistrer", "Save"},
	"actions":                 {"Actions", "Actions"},
	"patient_alerts":          {"Alertes du patient", "Patient alerts"},
	"no_alerts":               {"Aucune alerte.", "No alert."},
	"acknowledge":             {"Pris en compte", "Acknowledge"},
	"raised":                  {"Déclenchée le", "Raised on"},
	"fl_active":               {"Active", "Active"},
	"fl_inactive":             {"Prise en compte", "Acknowledged"},
	"episodes":                {"Épisodes de la CPTS", "Episodes of the CPTS"},
	"no_episodes":             {"Aucun épisode en cours.", "No open episode."},
	"pathway":                 {"Parcours", "Pathway"},
	"start":                   {"Début", "Start"},
	"ep_planned":              {"Inclusion à confirmer", "Inclusion to confirm"},
	"ep_active":               {"Actif", "Active"},
	"ep_onhold":               {"Suspendu (réhospitalisation)", "On hold (readmitted)"},
	"ep_finished":             {"Terminé", "Finished"},
	"ep_cancelled":            {"Annulé", "Cancelled"},
	"attention":               {"Tâches à traiter", "Tasks needing attention"},
	"no_attention":            {"Aucune tâche non assignée, refusée ou en retard.", "No unassigned, declined or overdue task."},
	"unassigned":              {"Non assignée", "Unassigned"},
	"declined":                {"Refusée", "Declined"},
	"owner":                   {"Responsable", "Owner"},
	"reassign_to":             {"Confier à", "Give to"},
	"reassign":                {"Réassigner", "Reassign"},
	"members":                 {"Membres de la CPTS", "Members of the CPTS"},
	"name":                    {"Nom", "Name"},
	"role":                    {"Rôle", "Role"},
	"organization":            {"Structure", "Organisation"},
	"territory":               {"Territoire (communes)", "Territory (communes)"},
	"active":                  {"Actif", "Active"},
	"inactive":                {"Inactif", "Inactive"},
	"yes":                     {"oui", "yes"},
	"no":                      {"non", "no"},
	"version":                 {"Version", "Version"},
	"tpl_actions":             {"Actions du parcours", "Pathway actions"},
	"no_templates":            {"Aucun modèle de parcours.", "No pathway template."},
	"discharge_intro":         {"Pour un service sans intégration : la sortie passe par la même réception que les messages des hôpitaux.", "For a ward without integration: the discharge goes through the same intake as hospital messages."},
	"facility":                {"Établissement (FINESS)", "Facility (FINESS)"},
	"family":                  {"Nom de naissance", "Birth name"},
	"given":                   {"Prénom(s)", "Given name(s)"},
	"gender":                  {"Sexe", "Sex"},
	"female":                  {"Féminin", "Female"},
	"male":                    {"Masculin", "Male"},
	"other":                   {"Autre", "Other"},
	"ipp":                     {"IPP (identifiant patient de l'établissement)", "Facility patient id (IPP)"},
	"visit_number":            {"Numéro de venue", "Visit number"},
	"ins":                     {"INS (matricule, identité qualifiée seulement)", "INS (qualified identity only)"},
	"postal_code":             {"Code postal", "Postal code"},
	"commune":                 {"Code commune INSEE", "INSEE commune code"},
	"city":                    {"Commune", "City"},
	"admission":               {"Date d'admission", "Admission date"},
	"discharge_date":          {"Date et heure de sortie", "Discharge date and time"},
	"gp_rpps":                 {"RPPS du médecin traitant", "GP's RPPS number"},
	"gp_name":                 {"Nom du médecin traitant (avec son RPPS)", "GP's name (with the RPPS number)"},
	"letter_text":             {"Lettre de liaison (texte)", "Discharge letter (text)"},
	"send":                    {"Transmettre", "Send"},
	"optional":                {"facultatif", "optional"},
	"required":                {"obligatoire", "required"},
	"where":                   {"Où", "Where"},
	// Coordination to-do list and discharge form checks.
	"form_fix":                {"Corrigez les champs signalés ; rien de ce que vous avez saisi n'est perdu.", "Correct the fields marked; nothing you typed is lost."},
	"todo_intro":              {"Ce qui attend une personne maintenant, le plus urgent d'abord ; dans chaque groupe, le problème le plus ancien d'abord.", "What needs a person now, most urgent first; in each group, the oldest problem first."},
	"todo_unassigned":         {"Tâches sans responsable", "Tasks nobody owns"},
	"todo_declined":           {"Tâches refusées par tous", "Tasks declined by everyone"},
	"todo_first_contact_late": {"Premiers contacts en retard", "Overdue first contacts"},
	"todo_visit_late":         {"Visites et actions en retard", "Overdue visits and actions"},
	"todo_alert_late":         {"Alertes non revues dans le délai du parcours", "Alerts not reviewed within the pathway's delay"},
	"first_contact_late":      {"Premier contact en retard", "First contact overdue"},
	"visit_late":              {"En retard", "Overdue"},
	"alert_late":              {"Alerte non revue", "Alert not reviewed"},
	"cands_territory":         {"professionnels dont le territoire couvre le domicile du patient", "professionals whose territory covers the patient's home"},
	"cands_none_role":         {"Aucun professionnel de ce rôle ne couvre le domicile du patient : seule la coordination peut la prendre.", "No professional of this role covers the patient's home: only the coordination can take it."},
	"cands_none":              {"Personne dans l'annuaire ne couvre le domicile du patient pour ce rôle : complétez l'annuaire ou les territoires.", "Nobody in the directory covers the patient's home for this role: complete the directory or the territories."},
	"load":                    {"tâches en cours :", "open tasks:"},
	"full":                    {"complet", "full"},
	"reassign_confirm":        {"Je confirme : la tâche sera proposée à la personne choisie, qui en sera prévenue.", "I confirm: the task will be offered to the person chosen, who will be told."},
	"reassign_confirm_title":  {"Confirmer la réattribution", "Confirm the reassignment"},
	"reassign_confirm_to":     {"Confier cette tâche à", "Give this task to"},
	"reassign_confirm_button": {"Confirmer la réattribution", "Confirm the reassignment"},
	"cancel":                  {"Annuler", "Cancel"},
	"cands_count":             {"Candidats :", "Candidates:"},
	"cands_best":              {"le moins chargé :", "least loaded:"},
	"reassign_choose":         {"Choisir à qui confier la tâche…", "Choose who to give the task to…"},
	"episodes_show":           {"Afficher les épisodes en cours", "Show the open episodes"},
	"coord_more":              {"Liste tronquée : trop d'éléments pour une page.", "List cut short: too many items for one page."},
	"dir_search":              {"Rechercher (nom, rôle, commune, code postal…)", "Search (name, role, commune, postal code…)"},
	"search":                  {"Rechercher", "Search"},
	"dir_all":                 {"tout afficher", "show all"},
	"dir_none":                {"Aucun membre ne correspond.", "No member matches."},
	"age_now":                 {"depuis moins d'une heure", "for less than an hour"},
	"age_hours":               {"depuis %d h", "for %d h"},
	"age_days":                {"depuis %d j", "for %d days"},
	"away_open":               {"absent(e)", "away"},
	"away_until":              {"absent(e) jusqu'au %s", "away until %s"},
	"away_from":               {"absent(e) à partir du %s", "away from %s"},

	// The nurse's phone in the field: the visit in one action, decline and
	// closing reasons, the day's round, the visits shown.
	"err_reason":               {"Indiquez le motif.", "Give the reason."},
	"reason_choose":            {"— Choisir le motif —", "— Choose the reason —"},
	"reason_other":             {"Autre motif (précisez)", "Other reason (say which)"},
	"why_absent":               {"Patient absent", "Patient not at home"},
	"why_out-of-area":          {"Hors secteur", "Outside my area"},
	"why_capacity":             {"Capacité atteinte", "No capacity left"},
	"why_hospitalised":         {"Patient hospitalisé", "Patient in hospital"},
	"why_refused":              {"Refus du patient", "Patient refused"},
	"why_other":                {"Autre", "Other"},
	"record_visit":             {"Enregistrer la visite", "Record the visit"},
	"record_visit_hint":        {"Enregistre les mesures et termine la tâche.", "Records the measurements and completes the task."},
	"close_without_visit":      {"Clore sans visite", "Close without a visit"},
	"done_visit_completed":     {"Visite enregistrée, tâche terminée.", "Visit recorded, task completed."},
	"the_team":                 {"l'équipe", "the team"},
	"visits_recent":            {"Visites récentes", "Recent visits"},
	"vitals_chart":             {"Pression artérielle (systolique, diastolique) et fréquence cardiaque", "Blood pressure (systolic, diastolic) and heart rate"},
	"col_bp":                   {"PA (mmHg)", "BP (mmHg)"},
	"col_hr":                   {"FC (/min)", "HR (/min)"},
	"col_by":                   {"Saisie par", "Recorded by"},
	"col_findings":             {"Symptômes et notes", "Symptoms and notes"},
	"no_visits":                {"Aucune visite enregistrée.", "No visit recorded."},
	"grp_overdue":              {"En retard", "Overdue"},
	"grp_today":                {"Aujourd'hui", "Today"},
	"grp_later":                {"Plus tard", "Later"},
	"no_city":                  {"Commune non renseignée", "No town given"},
	"nothing_today":            {"Rien d'autre aujourd'hui.", "Nothing else today."},
	"more_fields":              {"NYHA, œdèmes, essoufflement, note", "NYHA, oedema, breathlessness, note"},
	"err_decision":             {"Choisissez la décision.", "Choose the decision."},
	"done_review":              {"Décision enregistrée, alerte close.", "Decision recorded, alert closed."},
	"decision":                 {"Décision", "Decision"},
	"review_note":              {"Note (conduite à tenir)", "Note (what to do)"},
	"act_review":               {"Enregistrer la décision", "Record the decision"},
	"dec_treatment-adjustment": {"Ajustement du traitement", "Treatment adjustment"},
	"dec_consultation":         {"Consultation", "Consultation"},
	"dec_hospitalisation":      {"Hospitalisation", "Hospitalisation"},
	"dec_monitoring":           {"Surveillance", "Monitoring"},
	"dec_no-action":            {"Sans suite", "No further action"},
	"alerts_mine":              {"Alertes à examiner", "Alerts for me to review"},
	"alerts_patients":          {"Alertes ouvertes de mes patients", "Open alerts of my patients"},
	"kept_after_login":         {"Votre session avait expiré : vos saisies ont été gardées. Vérifiez-les et enregistrez.", "Your session had expired: what you typed was kept. Check it and save."},
	"review_decide":            {"Examiner et décider", "Review and decide"},
	"reviewed_by_other":        {"Examinée par un autre membre de l'équipe.", "Reviewed by another member of the team."},
	"hospitalised_badge":       {"Hospitalisé", "In hospital"},

	// The outcomes page (fixed-horizon rates, Kaplan–Meier, input errors).
	"out_complete":          {"Suivi complet", "Complete follow-up"},
	"out_rate_complete":     {"Taux sur suivi complet [IC 95 %]", "Rate over complete follow-up [95% CI]"},
	"out_in_followup":       {"Suivi incomplet (encore en cours)", "Follow-up incomplete (still running)"},
	"out_km":                {"Estimation de Kaplan–Meier, tous les épisodes [IC 95 %]", "Kaplan–Meier estimate, every episode [95% CI]"},
	"out_at_risk":           {"encore suivis à l'horizon : %d", "still followed at the horizon: %d"},
	"out_excluded":          {"%d exclus", "%d excluded"},
	"out_excluded_death":    {"(dont %d décès avant toute réhospitalisation, événement concurrent)", "(%d of them died before any readmission, a competing event)"},
	"out_censored_register": {"dont %d en attente du registre INSEE des décès", "%d of them waiting for the INSEE register of deaths"},
	"out_few_complete":      {"Moins de %d épisodes au suivi complet : taux peu fiable, voir l'estimation de Kaplan–Meier.", "Fewer than %d episodes with complete follow-up: an unreliable rate, see the Kaplan–Meier estimate."},
	"out_rules":             {"Un taux à N jours ne compte que les sorties dont toute la fenêtre est écoulée (et, pour les décès, couverte par le registre INSEE importé) ; les autres sont en suivi incomplet. L'estimation de Kaplan–Meier utilise toutes les sorties de la période, chacune jusqu'à son dernier jour observé (intervalle log-log de Greenwood). Un décès avant toute réhospitalisation exclut la sortie du taux de réhospitalisation et censure sa courbe.", "A rate at N days counts only the discharges whose whole window has elapsed (and, for deaths, is covered by the imported INSEE register); the others are still in follow-up. The Kaplan–Meier estimate uses every discharge of the period, each up to its last observed day (log-log Greenwood interval). A death before any readmission takes the discharge out of the readmission rate and censors its curve."},
	"out_err_date":          {"Date invalide : attendu AAAA-MM-JJ.", "Invalid date: expected YYYY-MM-DD."},
	"out_err_reversed":      {"La fin de la période est avant son début.", "The end of the period is before its start."},
	"out_err_integer":       {"Nombre entier attendu.", "A whole number is expected."},
	"out_err_negative":      {"Un nombre négatif n'a pas de sens ici.", "A negative number makes no sense here."},
	"out_err_den_zero":      {"Au moins 1 patient.", "At least 1 patient."},
	"out_err_num_gt_den":    {"Plus d'événements (%d) que de patients (%d).", "More events (%d) than patients (%d)."},
	"out_err_missing":       {"À remplir avec l'autre nombre de la référence.", "Fill in together with the baseline's other number."},
	"out_err_measure":       {"Indicateur inconnu.", "Unknown measure."},
}
