package teams

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/notify"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/timer"
	"github.com/prometheus/client_golang/prometheus"
)

var paris = clock.Paris

// Durable consumer names; the first two are also inbox keys.
const (
	DurableEpisode = "teams-episode"
	DurableTask    = "teams-task"
	DurableNotify  = "teams-notify"
)

// Timer kinds.
const (
	TimerAccept   = "teams-accept"
	TimerEscalate = "teams-escalate"
)

// Extensions and code systems.
const (
	ExtEpisode        = "https://passerelle.health/fhir/StructureDefinition/careteam-episode"
	ExtDelivery       = "https://passerelle.health/fhir/StructureDefinition/notification-delivery"
	ExtTeamAssignment = pathway.ExtTeamAssignment
	SystemAction      = "https://passerelle.health/fhir/CodeSystem/pathway-action"
	SystemKind        = "https://passerelle.health/fhir/CodeSystem/communication-kind"
	CodeEscalation    = "escalation"
)

// Default delays when a template says nothing.
const (
	DefaultAcceptance = 24 * time.Hour
	DefaultEscalation = 24 * time.Hour
)

// Consumer runs durable consumers.
type Consumer = bus.Consumer

// Deps are what the service needs.
type Deps struct {
	Store  store.Store
	Bus    Consumer
	Clock  clock.Clock
	Logger *slog.Logger
	Tenant string
	// Notifier delivers notifications (default: the log).
	Notifier notify.Notifier
	// PublicURL is where people open Passerelle, for links in
	// notifications.
	PublicURL string
	// MembersTTL is how long the directory is cached (default 5 s;
	// negative: read it every time).
	MembersTTL time.Duration
	// Metrics, when set, receives the service's metrics.
	Metrics prometheus.Registerer
	// Lanes is how many events each of the service's consumers handles at
	// once, those about one patient one at a time and in order
	// (bus.ConsumerConfig.Lanes; default bus.DefaultLanes).
	Lanes int
	// NotifyBackOff are the delays between delivery attempts (default 5 s,
	// 30 s, 2 min, 10 min, 30 min, 1 h, 2 h: about 4 h in all).
	NotifyBackOff []time.Duration
}

// Service is the teams service.
type Service struct {
	d   Deps
	log *slog.Logger

	mu      sync.Mutex
	members map[string]memberCache // by tenant
	cpts    map[string]string
	// loads are recent counts of open tasks by tenant|owner (loadTTL): a
	// hint for choosing among candidates, so a little old is fine.
	loads map[string]cachedLoad
	// counting are the counts under way, by tenant|owner: the handlers
	// that need one at once share it (countLoad).
	counting map[string]*loadCount
	// templates is the one reading of the stored templates (pkg/pathway).
	templates Templates

	sent *prometheus.CounterVec
}

type memberCache struct {
	at   time.Time
	list []directory.Member
	ref  map[string]int    // "PractitionerRole/<id>" → index in list
	orgs map[string]string // FINESS → "Organization/<id>"
}

// byRef finds a member by reference.
func (c memberCache) byRef(ref string) (directory.Member, bool) {
	i, ok := c.ref[ref]
	if !ok {
		return directory.Member{}, false
	}
	return c.list[i], true
}

// New returns the service.
func New(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Notifier == nil {
		d.Notifier = notify.Log{Logger: d.Logger}
	}
	if d.MembersTTL == 0 {
		d.MembersTTL = 5 * time.Second
	}
	if d.Lanes <= 0 {
		d.Lanes = bus.DefaultLanes
	}
	if d.NotifyBackOff == nil {
		d.NotifyBackOff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
			30 * time.Minute, time.Hour, 2 * time.Hour}
	}
	s := &Service{d: d, log: d.Logger.With("service", "teams"), members: map[string]memberCache{}, cpts: map[string]string{},
		templates: pathway.NewLibrary(d.Store, d.Logger.With("service", "teams")), loads: map[string]cachedLoad{}, counting: map[string]*loadCount{}}
	s.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passerelle_notifications_total",
		Help: "Notifications by channel and outcome (delivered, failed, retry)."}, []string{"channel", "outcome"})
	if d.Metrics != nil {
		if err := d.Metrics.Register(s.sent); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				s.sent = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return s
}

// Run consumes episode and task events and delivers notifications until
// ctx ends.
func (s *Service) Run(ctx context.Context) error {
	// Episode and task events are handled several at a time (Deps.Lanes),
	// one patient's one at a time and in order. Every rule reads the
	// current state, and a concurrent change of one task (from another
	// consumer) ends in a version conflict and a redelivery. Notifications
	// have no order to keep: up to four are delivered at once.
	return bus.RunAll(ctx, s.d.Bus,
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableEpisode, Subject: bus.ResourceSubject(s.d.Tenant, "EpisodeOfCare", "*"),
			Lanes: s.d.Lanes}, Handler: event.Inbox(s.d.Store, DurableEpisode, s.HandleEpisode)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableTask, Subject: bus.ResourceSubject(s.d.Tenant, "Task", "*"),
			Lanes: s.d.Lanes}, Handler: event.Inbox(s.d.Store, DurableTask, s.HandleTask)},
		bus.Consumption{Config: bus.ConsumerConfig{Durable: DurableNotify, Subject: bus.ResourceSubject(s.d.Tenant, "Communication", bus.OpCreated),
			MaxDeliver: len(s.d.NotifyBackOff) + 1, BackOff: s.d.NotifyBackOff, Concurrency: 4}, Handler: s.Deliver},
	)
}

// TimerHandlers are the handlers to register with the platform's timer
// runner.
func (s *Service) TimerHandlers() map[string]timer.Handler {
	return map[string]timer.Handler{TimerAccept: s.acceptTimeout, TimerEscalate: s.escalateTimer}
}

// directoryOf returns the tenant's members (cached for MembersTTL) and its
// organisations by FINESS.
func (s *Service) directoryOf(ctx context.Context, tenant string, fresh bool) (memberCache, error) {
	now := s.d.Clock.Now()
	s.mu.Lock()
	c, ok := s.members[tenant]
	s.mu.Unlock()
	if ok && !fresh && s.d.MembersTTL > 0 && now.Sub(c.at) < s.d.MembersTTL && !now.Before(c.at) {
		return c, nil
	}
	members, err := directory.LoadMembers(ctx, s.d.Store, tenant)
	if err != nil {
		return memberCache{}, err
	}
	orgs := map[string]string{}
	q := store.Query{Tenant: tenant, Type: "Organization", Count: 1000}
	var cpts []string
	for {
		page, err := s.d.Store.Search(ctx, q)
		if err != nil {
			return memberCache{}, err
		}
		for _, r := range page.Resources {
			m, err := decode(r.Body)
			if err != nil {
				continue
			}
			for _, id := range list(m["identifier"]) {
				if str(asObj(id), "system") == directory.SystemFINESS {
					orgs[str(asObj(id), "value")] = "Organization/" + r.ID
				}
			}
			for _, t := range list(m["type"]) {
				if str(asObj(t), "text") == "CPTS" {
					cpts = append(cpts, "Organization/"+r.ID)
				}
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	c = memberCache{at: now, list: members, orgs: orgs, ref: make(map[string]int, len(members))}
	for i, m := range members {
		c.ref[m.Ref()] = i
	}
	sort.Strings(cpts)
	s.mu.Lock()
	s.members[tenant] = c
	if len(cpts) > 0 {
		s.cpts[tenant] = cpts[0]
	}
	s.mu.Unlock()
	return c, nil
}

// member finds a member by reference, reading the directory again when the
// cache does not know it.
func (s *Service) member(ctx context.Context, tenant, ref string) (directory.Member, bool, error) {
	for _, fresh := range []bool{false, true} {
		c, err := s.directoryOf(ctx, tenant, fresh)
		if err != nil {
			return directory.Member{}, false, err
		}
		if m, ok := c.byRef(ref); ok {
			return m, true, nil
		}
	}
	return directory.Member{}, false, nil
}

func (s *Service) cptsOf(tenant string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cpts[tenant]
}

type cachedLoad struct {
	n  int
	at time.Time
}

// loadTTL is how long a count of open tasks is trusted, plus what the
// service itself assigned since (assigned). Tasks closed meanwhile are not
// taken off: a member looks a little busier than they are until the next
// count. The count is a search whose cost grows with the tasks the member
// ever held on PostgreSQL (it orders them all): counted every 5 s by each
// of eight lanes at once, it took most of the database's CPU under load.
const loadTTL = 30 * time.Second

// loadCount is one count of a member's open tasks under way.
type loadCount struct {
	done chan struct{}
	n    int
	err  error
}

// countLoad runs count for tenant|ref, or waits for the count already
// under way and takes its result.
func (s *Service) countLoad(tenant, ref string, count func() (int, error)) (int, error) {
	key := tenant + "|" + ref
	s.mu.Lock()
	if c, ok := s.counting[key]; ok {
		s.mu.Unlock()
		<-c.done
		return c.n, c.err
	}
	c := &loadCount{done: make(chan struct{})}
	s.counting[key] = c
	s.mu.Unlock()
	c.n, c.err = count()
	s.mu.Lock()
	delete(s.counting, key)
	s.mu.Unlock()
	close(c.done)
	return c.n, c.err
}

func (s *Service) cachedLoad(tenant, ref string) (int, bool) {
	if s.d.MembersTTL < 0 {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.loads[tenant+"|"+ref]
	if now := s.d.Clock.Now(); !ok || now.Sub(c.at) > loadTTL || now.Before(c.at) {
		return 0, false
	}
	return c.n, true
}

func (s *Service) storeLoad(tenant, ref string, n int) {
	s.mu.Lock()
	s.loads[tenant+"|"+ref] = cachedLoad{n: n, at: s.d.Clock.Now()}
	s.mu.Unlock()
}

// assigned counts one more open task for ref in the cache.
func (s *Service) assigned(tenant, ref string) {
	s.mu.Lock()
	if c, ok := s.loads[tenant+"|"+ref]; ok {
		c.n++
		s.loads[tenant+"|"+ref] = c
	}
	s.mu.Unlock()
}
