package hl7v2_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
)

const exampleA03 = "MSH|^~\\&|GAM_CHX|CHX_CARDIO^420000002^FINESS|PASSERELLE|CPTS_EXEMPLE|20261003153000||ADT^A03^ADT_A03|MSG000123|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8\r" +
	"PID|1||000123456^^^CH_EXEMPLE&2.999.250.1.1&ISO^PI~248034218701255^^^ASIP-SANTE-INS-NIR-TEST&1.2.250.1.213.1.4.10&ISO^INS||TESTDURAND^MARIE^^^^^L||19480315|F|||Les Prés \\T\\ Bois^^ROANNE^^42300^FRA^H|||||||||||||||||||||VALI\r" +
	"PV1|1|I|6000||||||||||||||||V0004567^^^CH_EXEMPLE&2.999.250.1.1&ISO^VN|||||||||||||||||3|||||D|||20260926101500|20261003150000\r"

func ExampleParse() {
	m, err := hl7v2.Parse([]byte(exampleA03))
	if err != nil {
		panic(err)
	}
	pid, _ := m.PID()
	ins, _ := pid.INS()
	pv1, _ := m.PV1()
	fmt.Println(m.Get("MSH-9.2"), m.Get("MSH-4.2"))
	fmt.Println(ins.ID, ins.AssigningAuthority.UniversalID, pid.HasReliability("VALI"))
	fmt.Println(m.Get("PID-11.1"))
	fmt.Println(pv1.DischargeTime.Time.Format(time.RFC3339))
	// Output:
	// A03 420000002
	// 248034218701255 1.2.250.1.213.1.4.10 true
	// Les Prés & Bois
	// 2026-10-03T15:00:00+02:00
}

func ExampleAck() {
	now := time.Date(2026, 10, 3, 15, 30, 5, 0, hl7v2.Paris)

	m, _ := hl7v2.Parse([]byte(exampleA03))
	fmt.Println(strings.ReplaceAll(string(hl7v2.Ack(m, hl7v2.AckAccept, nil, now, "ACK1").Encode()), "\r", "\n"))

	// A message that does not parse is still acknowledged, from its header.
	bad := []byte(strings.Replace(exampleA03, "|MSG000123|", "||", 1))
	_, err := hl7v2.Parse(bad)
	var pe *hl7v2.ParseError
	if errors.As(err, &pe) {
		hdr, _ := hl7v2.ParseHeader(bad)
		ack := hl7v2.Ack(hdr, pe.AckCode(), hl7v2.AckErrors(err), now, "ACK2")
		fmt.Println(strings.ReplaceAll(string(ack.Encode()), "\r", "\n"))
	}
	// Output:
	// MSH|^~\&|PASSERELLE|CPTS_EXEMPLE|GAM_CHX|CHX_CARDIO^420000002^FINESS|20261003153005+0200||ACK^A03^ACK|ACK1|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8
	// MSA|AA|MSG000123
	//
	// MSH|^~\&|PASSERELLE|CPTS_EXEMPLE|GAM_CHX|CHX_CARDIO^420000002^FINESS|20261003153005+0200||ACK^A03^ACK|ACK2|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8
	// MSA|AR||MSH-10 message control id required
	// ERR||MSH^1^10|101^Required field missing^HL70357|E||||MSH-10 message control id required
}
